using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Tests.Commands;

public sealed class RunCommandTests : FakeDaemonTest
{
    private const string FullHacToml = """
        name = "web1"        # id
        namespace = "default"
        image = "default"    # an image name in the node's image directory
        memory = 128         # MiB
        cpu = 1
        disk = 64            # MiB
        network = 1
        provider = "qemu"
        restart_policy = "Always"
        [kernel]
        cmdline = { console = "ttyS0", quiet = true }
        initrd = "/var/lib/hypercore/images/default/initrd.img"
        [metadata]
        x-owner = "team-a"
        """;

    [Test]
    public async Task Run_HacTomlWithFlags_FlagsOverrideFileInCreateRequest()
    {
        var config = WriteFile(".toml", FullHacToml);

        var result = await Vis("run", "--config", config, "--no-wait", "--memory", "256", "--cpu", "2", "--network", "2",
            "--image", "/boot/vmlinuz-custom", "--provider", "firecracker", "-n", "prod");

        result.ExitCode.Should().Be(0, result.ToString());
        var expected = new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec
            {
                Id = "web1",
                Namespace = "prod",
                Vcpu = 2,
                MemoryInMb = 256,
                Kernel = new Kernel { Image = "/boot/vmlinuz-custom", Cmdline = { ["console"] = "ttyS0", ["quiet"] = "" } },
                Initrd = new Initrd { Image = "/var/lib/hypercore/images/default/initrd.img" },
                AdditionalVolumes = { new Volume { Id = "disk0", SizeInMb = 64, Source = new VolumeSource() } },
                Interfaces =
                {
                    new NetworkInterface { DeviceId = "eth0", Type = NetworkInterface.Types.IfaceType.Tap },
                    new NetworkInterface { DeviceId = "eth1", Type = NetworkInterface.Types.IfaceType.Tap },
                },
                Metadata = { ["x-owner"] = "team-a" },
                Provider = "firecracker",
                RestartPolicy = "Always",
            },
        };
        Service.ReceivedOf<CreateMicroVMRequest>().Should().ContainSingle().Which.Should().Be(expected);
        Service.ReceivedOf<WatchMicroVMsRequest>().Should().BeEmpty("--no-wait must not wait");
    }

    [Test]
    public async Task Run_HacTomlWithoutFlags_SendsFileValues()
    {
        var config = WriteFile(".toml", FullHacToml);

        var result = await Vis("run", "-c", config, "--no-wait");

        result.ExitCode.Should().Be(0, result.ToString());
        var spec = Service.ReceivedOf<CreateMicroVMRequest>().Single().Microvm;
        spec.Id.Should().Be("web1");
        spec.Namespace.Should().Be("default");
        spec.Kernel.Image.Should().Be("default", "an image name is passed through for the daemon to resolve");
        spec.MemoryInMb.Should().Be(128);
        spec.Vcpu.Should().Be(1);
        spec.Provider.Should().Be("qemu");
        spec.Interfaces.Should().ContainSingle().Which.DeviceId.Should().Be("eth0");
        spec.AdditionalVolumes.Should().ContainSingle().Which.SizeInMb.Should().Be(64);
    }

    [Test]
    public async Task Run_OnlyName_SendsDefaultImageAndSizes()
    {
        var result = await Vis("run", "--name", "web2", "--no-wait");

        result.ExitCode.Should().Be(0, result.ToString());
        var expected = new MicroVMSpec
        {
            Id = "web2",
            Namespace = "default",
            Vcpu = 1,
            MemoryInMb = 128,
            Kernel = new Kernel { Image = "default" },
        };
        Service.ReceivedOf<CreateMicroVMRequest>().Should().ContainSingle().Which.Microvm.Should().Be(expected);
    }

    [Test]
    public async Task Run_NoName_ExitsUsageAndSendsNothing()
    {
        var result = await Vis("run", "--no-wait");

        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        result.Err.Should().StartWith("vis: ").And.Contain("name is required");
        Service.Received.Should().BeEmpty();
    }

    [Test]
    public async Task Run_UnknownTomlKey_ExitsUsageNamingKeyAndSendsNothing()
    {
        var config = WriteFile(".toml", "name = \"web1\"\nmemmory = 512\n");

        var result = await Vis("run", "--config", config);

        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        result.Err.Should().StartWith("vis: ").And.Contain("\"memmory\"");
        Service.Received.Should().BeEmpty();
    }

    [Test]
    public async Task Run_UnknownKernelKey_ExitsUsageNamingDottedKey()
    {
        var config = WriteFile(".toml", "name = \"web1\"\n[kernel]\ncmdlin = { console = \"ttyS0\" }\n");

        var result = await Vis("run", "--config", config);

        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        result.Err.Should().Contain("\"kernel.cmdlin\"");
        Service.Received.Should().BeEmpty();
    }

    [Test]
    public async Task Run_MissingConfigFile_ExitsUsage()
    {
        var result = await Vis("run", "--config", Path.Combine(Path.GetTempPath(), $"missing-{Guid.NewGuid():N}.toml"));

        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        Service.Received.Should().BeEmpty();
    }

    [Test]
    public async Task Run_Wait_FollowsWatchUntilRunning()
    {
        var (exit, output, error) = StartVis("run", "--name", "web1");
        await Service.WatchStarted.WaitAsync(Patience);

        Service.SetPhase("default", "web1", "Provisioning");
        await Eventually(() => error.ToString().Contains("default/web1: Provisioning"), "the Provisioning line");
        exit.IsCompleted.Should().BeFalse("Provisioning is not Running");
        Service.SetPhase("default", "web1", "Running");

        (await Finished(exit)).Should().Be(0, error.ToString());
        error.ToString().Should().Contain("default/web1: Pending").And.Contain("default/web1: Running");
        var row = output.ToString().Split('\n')[1];
        row.Should().MatchRegex(@"^web1\s+default\s+-\s+Running\s+Running\s+1\s+128Mi\s");
        Service.ReceivedOf<WatchMicroVMsRequest>().Should().ContainSingle()
            .Which.Should().Be(new WatchMicroVMsRequest { Id = "web1", Namespace = "default" });
    }

    [Test]
    public async Task Run_VmFailsWhileWaiting_ExitsVmFailedWithConditionMessage()
    {
        var (exit, _, error) = StartVis("run", "--name", "web1", "--image", "/nope/vmlinuz");
        await Service.WatchStarted.WaitAsync(Patience);

        Service.SetPhase("default", "web1", "Failed", "KernelNotFound", "kernel image /nope/vmlinuz does not exist");

        (await Finished(exit)).Should().Be(ExitCodes.VmFailed, error.ToString());
        error.ToString().Should().Contain("vis: microvm default/web1 failed: kernel image /nope/vmlinuz does not exist (KernelNotFound)");
    }

    [Test]
    public async Task Run_PhaseNotReachedInTime_ExitsTimeout()
    {
        var (exit, _, error) = StartVis("run", "--name", "web1", "--timeout", "30s");
        await Service.WatchStarted.WaitAsync(Patience);
        Service.SetPhase("default", "web1", "Provisioning");
        await Eventually(() => error.ToString().Contains("Provisioning"), "the Provisioning line");

        Time.Advance(TimeSpan.FromSeconds(31));

        (await Finished(exit)).Should().Be(ExitCodes.Timeout, error.ToString());
        error.ToString().Should().Contain("vis: timed out after 30s waiting for microvm default/web1 to reach Running (last phase: Provisioning)");
    }

    [Test]
    public async Task Run_Existing_ExitsAlreadyExists()
    {
        Service.Seed(new MicroVMSpec { Id = "web1", Kernel = new Kernel { Image = "default" } });

        var result = await Vis("run", "--name", "web1");

        result.ExitCode.Should().Be(ExitCodes.AlreadyExists, result.ToString());
        result.Err.Should().Be("vis: microvm default/web1 already exists\n");
    }

    [Test]
    public async Task Run_NoHostFlag_UsesVisHostVariable()
    {
        var harness = new CliHarness(Time, new Dictionary<string, string> { ["VIS_HOST"] = Daemon.Host });

        var result = await harness.RunAsync("run", "--name", "web1", "--no-wait");

        result.ExitCode.Should().Be(0, result.ToString());
        Service.ReceivedOf<CreateMicroVMRequest>().Should().ContainSingle();
    }

    [Test]
    public async Task Create_SpecFileYaml_SendsSpecWithFlagOverrides()
    {
        var file = WriteFile(".yaml", """
            id: web3
            namespace: lab
            vcpu: 2
            memoryInMb: 512
            kernel:
              image: /srv/vmlinuz
              cmdline: { console: ttyS0, "panic": "1" }
              addNetworkConfig: true
            rootVolume:
              id: root
              isReadOnly: false
              source: { hostPath: /srv/rootfs.img }
            labels: { tier: "1" }
            restartPolicy: Never
            """);

        var result = await Vis("create", "-f", file, "--memory", "1024");

        result.ExitCode.Should().Be(0, result.ToString());
        var expected = new MicroVMSpec
        {
            Id = "web3",
            Namespace = "lab",
            Vcpu = 2,
            MemoryInMb = 1024,
            Kernel = new Kernel { Image = "/srv/vmlinuz", Cmdline = { ["console"] = "ttyS0", ["panic"] = "1" }, AddNetworkConfig = true },
            RootVolume = new Volume { Id = "root", Source = new VolumeSource { HostPath = "/srv/rootfs.img" } },
            Labels = { ["tier"] = "1" },
            RestartPolicy = "Never",
        };
        Service.ReceivedOf<CreateMicroVMRequest>().Should().ContainSingle().Which.Microvm.Should().Be(expected);
        Service.ReceivedOf<WatchMicroVMsRequest>().Should().BeEmpty("create does not wait unless asked");
    }

    [Test]
    public async Task Create_SpecFileJsonWithUnknownField_ExitsUsageAndSendsNothing()
    {
        var file = WriteFile(".json", """{ "id": "web3", "kernel": { "image": "default" }, "cpus": 2 }""");

        var result = await Vis("create", "-f", file);

        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        result.Err.Should().Contain("cpus");
        Service.Received.Should().BeEmpty();
    }

    [Test]
    public async Task Create_GrpcurlShapedRequestJson_SendsItsSpec()
    {
        var file = WriteFile(".json", """
            { "microvm": { "id": "12", "namespace": "testns", "vcpu": 2, "memoryInMb": 64,
              "kernel": { "image": "/tmp/test", "cmdline": { "bash": "100" }, "addNetworkConfig": true }, "provider": "firecracker" },
              "metadata": {} }
            """);

        var result = await Vis("create", "--file", file);

        result.ExitCode.Should().Be(0, result.ToString());
        var spec = Service.ReceivedOf<CreateMicroVMRequest>().Single().Microvm;
        spec.Id.Should().Be("12");
        spec.Provider.Should().Be("firecracker");
        spec.Kernel.Cmdline.Should().Contain("bash", "100");
    }
}
