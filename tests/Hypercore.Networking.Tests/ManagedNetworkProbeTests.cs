using System.Diagnostics;
using System.Text.RegularExpressions;
using Grpc.Core;
using Hypercore.Client;
using Hypercore.Contracts.VmApi;
using Hypercore.Testing;

namespace Hypercore.Networking.Tests;

/// <summary>
/// Guest health (issue 14) with real guests on the managed network: the shipped daemon with network-managed inside a
/// namespace the test made, QEMU guests (TCG) that lease their address by DHCP and serve HTTP with busybox httpd, and
/// TCP/HTTP probes that go to the leased address (the only kind of address a probe may reach by default). A liveness
/// HTTP endpoint the guest stops serving on the test's signal restarts the VM once; a probe aimed at an address the
/// node does not give is refused at Create. A startup probe holds off a liveness probe strict enough to end a booting guest.
/// </summary>
[NonParallelizable]
public sealed partial class ManagedNetworkProbeTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(4);

    // Runs in the guest (the default image's NoCloud hook starts a "#!" user-data script in the background): serves
    // /healthz on port 8081 and stops serving it once the node has a file named stop-<this boot's id>, so the test
    // decides when one boot's liveness endpoint fails and a later boot's keeps answering.
    private const string UserData = """
        #!/bin/sh
        say() {
            echo "$1" >/dev/console
            case " $(cat /sys/class/tty/console/active 2>/dev/null) " in
                *" ttyS0 "*) ;;
                *) [ -c /dev/ttyS0 ] && echo "$1" >/dev/ttyS0 ;;
            esac
        }
        boot=$(cat /proc/sys/kernel/random/boot_id)
        mkdir -p /srv/health
        echo ok >/srv/health/healthz
        httpd -f -p 8081 -h /srv/health &
        health=$!
        say "probe-test: healthz up boot=$boot"
        while ! wget -q -O /dev/null "http://10.200.0.1:8000/stop-$boot" 2>/dev/null; do sleep 1; done
        kill "$health"
        say "probe-test: healthz stopped boot=$boot"
        """;


    [Test]
    public async Task ManagedNetwork_TcpAndHttpProbesReachTheLeasedAddress_LivenessHttpFailureRestartsOnce_StartupHoldsOffLiveness_StaticTargetRefused()
    {
        await using var ns = await Netns.CreateAsync("p");
        var root = Directory.CreateTempSubdirectory("hc-probes2-e2e-").FullName;
        File.SetUnixFileMode(root, (UnixFileMode)0b111_101_101); // dnsmasq re-reads its hosts file as its own user
        var state = Path.Combine(root, "state");
        await GuestImage.InstallAsDefaultAsync(state);
        File.SetUnixFileMode(state, (UnixFileMode)0b111_101_101);
        var www = Directory.CreateDirectory(Path.Combine(root, "www")).FullName;
        string[] args =
        [
            "run", "--state-dir", state, "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0",
            "--qemu-accel", "tcg", "--node-name", "probes-e2e", "--network-managed",
        ];
        var daemon = DaemonProcess.StartInNetns(ns.Name, Netns.VistaradDll, args);
        Process? nodeHttpd = null;
        try
        {
            await daemon.WaitReadyAsync(Patience);
            using var client = HypercoreClient.Connect("unix://" + Path.Combine(state, "vistarad.sock"));

            // Refused before anything is written: a TCP probe whose only target is a static address the node does not give.
            var steer = Spec("steer", readiness: new Probe { TcpSocket = new TcpSocketProbe { Port = 22 } });
            steer.Interfaces[0].Bridge = "br-static";
            steer.Interfaces[0].Address = new StaticAddress { Address = "10.99.0.5/24" };
            var refused = await FluentActions.Awaiting(() => client.CreateMicroVmAsync(steer)).Should().ThrowAsync<RpcException>();
            refused.Which.StatusCode.Should().Be(StatusCode.InvalidArgument);
            refused.Which.Status.Detail.Should().Contain("readiness_probe: the guest address 10.99.0.5 was not given to the VM by this node")
                .And.Contain("probe-allowed-cidrs");
            (await client.TryGetMicroVmAsync("steer")).Should().BeNull();

            var sw = Stopwatch.StartNew();
            var web = Spec("web",
                readiness: new Probe { TcpSocket = new TcpSocketProbe { Port = 80 }, PeriodSeconds = 1 },
                liveness: new Probe
                {
                    HttpGet = new HttpGetProbe { Port = 8081, Path = "/healthz" }, InitialDelaySeconds = 20, PeriodSeconds = 2, FailureThreshold = 3,
                });
            web.RestartPolicy = "Always";
            web.Metadata["user-data"] = UserData;
            // A liveness probe this strict would end the guest while it boots; the startup probe holds it off until httpd answers.
            var api = Spec("api",
                readiness: new Probe { HttpGet = new HttpGetProbe { Port = 80, Path = "/" }, PeriodSeconds = 1 },
                liveness: new Probe { HttpGet = new HttpGetProbe { Port = 80, Path = "/" }, PeriodSeconds = 1, TimeoutSeconds = 5, FailureThreshold = 2 });
            api.StartupProbe = new Probe { TcpSocket = new TcpSocketProbe { Port = 80 }, PeriodSeconds = 1, FailureThreshold = 240 };
            await client.CreateMicroVmAsync(web);
            await client.CreateMicroVmAsync(api);

            var webReady = await client.WaitForGuestReadyAsync("web", Patience);
            var apiReady = await client.WaitForGuestReadyAsync("api", Patience);
            TestContext.Progress.WriteLine($"[measure] TCG, two guests: create -> both GuestReady by TCP/HTTP probes {sw.Elapsed.TotalSeconds:0.0} s " +
                $"(guestReadySeconds web {webReady.Status.GuestReadySeconds:0.0}, api {apiReady.Status.GuestReadySeconds:0.0})");

            var webAddress = Ip(webReady.Status.NetworkInterfaces["eth0"].GuestAddress);
            var apiAddress = Ip(apiReady.Status.NetworkInterfaces["eth0"].GuestAddress);
            webAddress.Should().MatchRegex(@"^10\.200\.0\.\d+$");
            Condition(webReady, "GuestReady").Message.Should().Be($"tcp connect to {webAddress}:80 succeeded");
            Condition(apiReady, "GuestReady").Message.Should().Be($"http GET http://{apiAddress}:80/ returned 200");
            Condition(apiReady, "GuestStarted").Should().Match<Condition>(c => c.Status == "True" && c.Message == $"tcp connect to {apiAddress}:80 succeeded");
            Console(webReady).Should().Contain("hypercore: httpd on port 80", "ready means the guest's server answers");
            webReady.Status.RestartCount.Should().Be(0);

            // The node's HTTP server the guest polls for its stop signal (on the bridge, made at the first start).
            nodeHttpd = ns.Start("busybox", "httpd", "-f", "-p", "10.200.0.1:8000", "-h", www);
            var firstBoot = await BootIdAsync(webReady, from: 0);
            (await ns.RunAsync("busybox", "wget", "-q", "-O", "-", $"http://{webAddress}:8081/healthz")).Trim().Should().Be("ok");
            (await client.GetMicroVmAsync("web")).Status.RestartCount.Should().Be(0, "the liveness endpoint answered until now");
            await File.WriteAllTextAsync(Path.Combine(www, "stop-" + firstBoot), "stop\n");
            var stoppedAt = sw.Elapsed;

            var restarted = await WaitAsync(client, "web", v => v.Status.RestartCount >= 1 && v.Status.Phase == "Running", "restartCount 1 after healthz stopped");
            restarted.Status.RestartCount.Should().Be(1, "one liveness failure, one restart");
            restarted.Status.Pid.Should().NotBe(webReady.Status.Pid);
            ProcFs.IsAlive(webReady.Status.Pid).Should().BeFalse("the failing guest's QEMU was killed");
            Console(webReady).Should().Contain($"probe-test: healthz stopped boot={firstBoot}", "the restart came after the endpoint stopped, not before");
            TestContext.Progress.WriteLine($"[measure] healthz stopped -> restarted: {(sw.Elapsed - stoppedAt).TotalSeconds:0.0} s");
            daemon.Stderr.Should().MatchRegex(
                $@"default/web: liveness probe http :8081/healthz failed 3 times in a row: http GET http://{Regex.Escape(webAddress)}:8081/healthz failed: [^\n]*; ending the VM \(restartPolicy Always\)");

            // The second boot keeps the lease, is ready again and its endpoint keeps answering: no second restart.
            var again = await client.WaitForGuestReadyAsync("web", Patience);
            Ip(again.Status.NetworkInterfaces["eth0"].GuestAddress).Should().Be(webAddress, "a restarted VM keeps its lease");
            var secondBoot = await BootIdAsync(again, from: Console(webReady).LastIndexOf("probe-test: healthz stopped", StringComparison.Ordinal));
            secondBoot.Should().NotBe(firstBoot);
            await Task.Delay(TimeSpan.FromSeconds(30)); // past the liveness initial delay and a threshold of periods
            (await ns.RunAsync("busybox", "wget", "-q", "-O", "-", $"http://{webAddress}:8081/healthz")).Trim().Should().Be("ok");
            var settled = await client.GetMicroVmAsync("web");
            settled.Status.RestartCount.Should().Be(1, "the VM was restarted once");
            Condition(settled, "GuestReady").Status.Should().Be("True");
            (await client.GetMicroVmAsync("api")).Status.RestartCount.Should().Be(0, "its strict liveness probe was held off until the startup probe succeeded");
            daemon.Stderr.Should().Contain("default/api: guest started (startup probe tcp :80");

            foreach (var id in new[] { "web", "api" })
            {
                await client.DeleteMicroVmAsync(id);
                await client.WaitForDeletionAsync(id, Patience);
            }
        }
        finally
        {
            TestContext.Progress.WriteLine(daemon.Stderr.Length > 6000 ? daemon.Stderr[^6000..] : daemon.Stderr);
            nodeHttpd?.Dispose();
            await daemon.DisposeAsync();
            ns.KillAllIn(); // QEMU guests, dnsmasq and the node's httpd live in the namespace
            await Task.Delay(500);
            Directory.Delete(root, recursive: true);
        }
    }

    private static MicroVMSpec Spec(string id, Probe? readiness = null, Probe? liveness = null)
    {
        var spec = new MicroVMSpec
        {
            Id = id, Namespace = "default", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "default" },
            ReadinessProbe = readiness, LivenessProbe = liveness,
        };
        spec.Kernel.Cmdline["hypercore.dhcp"] = "";
        spec.Kernel.Cmdline["hypercore.httpd"] = "80";
        spec.Interfaces.Add(new NetworkInterface { DeviceId = "eth0", Type = NetworkInterface.Types.IfaceType.Tap });
        return spec;
    }

    private static Condition Condition(MicroVM vm, string type) =>
        vm.Status.Conditions.SingleOrDefault(c => c.Type == type) ?? throw new AssertionException($"no {type} condition in {vm.Status}");

    private static string Ip(string cidr) => cidr.Split('/')[0];

    private static string Console(MicroVM vm) => File.Exists(vm.Status.ConsoleLogPath) ? File.ReadAllText(vm.Status.ConsoleLogPath) : "";

    /// <summary>The boot id the user-data printed after <paramref name="from"/> in the console.</summary>
    private static async Task<string> BootIdAsync(MicroVM vm, int from)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var text = Console(vm);
            var match = HealthzUp().Match(text, Math.Max(0, Math.Min(from, text.Length)));
            if (match.Success)
            {
                return match.Groups[1].Value;
            }

            if (sw.Elapsed > Patience)
            {
                Assert.Fail($"the guest's user-data did not start its health server; console:\n{text}");
            }

            await Task.Delay(250);
        }
    }

    private static async Task<MicroVM> WaitAsync(HypercoreClient client, string id, Func<MicroVM, bool> done, string what)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var vm = await client.GetMicroVmAsync(id);
            if (done(vm))
            {
                return vm;
            }

            if (sw.Elapsed > Patience)
            {
                Assert.Fail($"timed out waiting for {what}; last status: {vm.Status}");
            }

            await Task.Delay(250);
        }
    }

    [GeneratedRegex(@"probe-test: healthz up boot=([0-9a-f-]+)")]
    private static partial Regex HealthzUp();
}
