using Hypercore.Images.Cache;
using Hypercore.Images.Integration;
using Hypercore.Images.References;
using Hypercore.Images.Registry;
using Hypercore.Images.Tests.Fixtures;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;

namespace Hypercore.Images.Tests;

/// <summary>The reconciler's images step against a real docker-registry: wait with progress, proceed with a view into the cache.</summary>
[TestFixture]
[NonParallelizable]
public sealed class ImagesStartStepTests() : PlainRegistryTest("step")
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private (ImagesStartStep Step, ImageCache Cache, CountingHandler Counter) NewStep(string? insecureHost = null, ImagesStartStepOptions? options = null,
        RegistryAllowList? registries = null)
    {
        var root = Path.Combine(Dir, "cache-" + Guid.NewGuid().ToString("N")[..8]);
        var counter = new CountingHandler();
        var registryOptions = new RegistryOptions { RequestTimeout = TimeSpan.FromSeconds(5) };
        registryOptions.InsecureRegistries.Add(insecureHost ?? Registry.Host);
        var client = new RegistryClient(registryOptions, counter);
        var cache = new ImageCache(new ImageCacheOptions { Root = root }, client, TimeProvider.System);
        var step = new ImagesStartStep(cache, TimeProvider.System, options ?? new ImagesStartStepOptions
        {
            PollInterval = TimeSpan.FromMilliseconds(100),
            BackoffBase = TimeSpan.FromMilliseconds(200),
            BackoffCap = TimeSpan.FromSeconds(2),
            FastPath = TimeSpan.Zero, // every test sees the first answer before the pull could finish
        }, registries: registries);
        Disposables.Add(step);
        Disposables.Add(cache);
        Disposables.Add(client);
        return (step, cache, counter);
    }

    private static MicroVm Vm(string uid, string kernel, string? initrd = null, params VolumeSpec[] volumes) => new()
    {
        Uid = uid,
        ResourceVersion = "1",
        Spec = new MicroVmSpec
        {
            Id = "vm-" + uid,
            Kernel = new KernelSpec { Image = kernel },
            Initrd = initrd is null ? null : new InitrdSpec { Image = initrd },
            RootVolume = volumes.FirstOrDefault(),
            AdditionalVolumes = volumes.Skip(1).ToList(),
        },
    };

    private async Task<string> PushBootImageAsync(string repo, string kernelText = "KERNEL", bool withKernel = true)
    {
        var entries = new List<LayerEntry> { new DirEntry("boot"), new FileEntry("boot/initrd.img", "INITRD") };
        if (withKernel) entries.Add(new FileEntry("boot/vmlinux", kernelText));
        await Pusher.PushAsync(repo, "1", TestImages.Image("amd64", TestImages.Layer([.. entries])));
        return $"{Registry.Host}/{repo}:1";
    }

    /// <summary>Runs the step until it proceeds (or gives up), returning every answer and the last context.</summary>
    private static async Task<(List<StartStepResult> Results, StartContext Context)> RunUntilDoneAsync(
        ImagesStartStep step, MicroVm vm, Func<StartStepResult, bool>? stopOn = null)
    {
        var results = new List<StartStepResult>();
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            var context = new StartContext(vm);
            var result = await step.PrepareAsync(context, CancellationToken.None);
            results.Add(result);
            if (result.Outcome != StartStepOutcome.Wait || (stopOn?.Invoke(result) ?? false) || DateTime.UtcNow > deadline)
            {
                return (results, context);
            }

            await Task.Delay(result.RetryAfter);
        }
    }

    private static Condition? ImageReady(StartStepResult result) =>
        result.Status is { } change ? change(MicroVmStatus.Initial).FindCondition(ImagesStartStep.ConditionType) : null;

    /// <summary>Issue 15 (cpu10): a start that names no image (host paths only, most starts) costs one cached answer.</summary>
    [Test]
    public async Task Prepare_HostPathsOnly_ProceedsWithoutAllocating()
    {
        var (step, _, counter) = NewStep();
        var vm = Vm("u-hp", "/boot/vmlinuz", "/boot/initrd.img", new VolumeSpec { Id = "root", HostPath = "/var/lib/hypercore/volumes/root.img" });
        await step.PrepareAsync(new StartContext(vm), CancellationToken.None);

        var context = new StartContext(vm);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var result = await step.PrepareAsync(context, CancellationToken.None);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        result.Outcome.Should().Be(StartStepOutcome.Proceed);
        result.Status.Should().BeNull("no ImageReady condition for a VM that names no image");
        context.Vm.Should().BeSameAs(vm);
        allocated.Should().Be(0);
        counter.Requests.Should().BeEmpty();
    }

    [Test]
    public void NamesAnImage_AgreesWithWhatTheStepWouldPull()
    {
        var reference = $"{Registry.Host}/step/any:1";
        var specs = new[]
        {
            Vm("a", "/boot/vmlinuz").Spec,
            Vm("b", reference).Spec,
            Vm("c", "/boot/vmlinuz", reference).Spec,
            Vm("d", "/boot/vmlinuz", null, new VolumeSpec { Id = "root", ContainerSource = reference }).Spec,
            Vm("e", "/boot/vmlinuz", null, new VolumeSpec { Id = "root", HostPath = "/v/root.img" }, new VolumeSpec { Id = "data", ContainerSource = reference }).Spec,
            Vm("f", "/boot/vmlinuz", "/boot/initrd.img", new VolumeSpec { Id = "root", HostPath = "/v/root.img" }, new VolumeSpec { Id = "data", HostPath = "/v/d.img" }).Spec,
        };

        specs.Select(ImagesStartStep.NamesAnImage).Should().Equal(false, true, true, true, true, false);
        specs.Select(s => ImagesStartStep.Wanted(s).Count > 0).Should().Equal(specs.Select(ImagesStartStep.NamesAnImage));
    }

    [Test]
    public async Task Prepare_RegistryNotAllowed_FailsNamingTheSettingWithoutAnyRequest()
    {
        var reference = await PushBootImageAsync("step/notallowed");
        var volume = new VolumeSpec { Id = "data", ContainerSource = reference };
        // The record may predate a settings change (or come from kubectl): the step checks again before pulling.
        var (step, cache, counter) = NewStep(registries: new RegistryAllowList(["registry.lan:5000"]));

        var context = new StartContext(Vm("u-na", "/boot/vmlinuz", null, volume));
        var result = await step.PrepareAsync(context, CancellationToken.None);

        result.Outcome.Should().Be(StartStepOutcome.Fail);
        result.Reason.Should().Be(ImagesStartStep.ReasonRegistryNotAllowed);
        result.Message.Should().Contain($"root_volume source.container_source \"{reference}\" names registry {Registry.Host}")
            .And.Contain("allowed: registry.lan:5000").And.Contain("--allowed-registries registry.lan:5000," + Registry.Host);
        ImageReady(result)!.Reason.Should().Be(ImagesStartStep.ReasonRegistryNotAllowed);
        await Task.Delay(200);
        counter.Requests.Should().BeEmpty("nothing is requested from a registry that is not allowed");
        cache.List().Should().BeEmpty();
        context.Vm.Should().BeSameAs(context.Stored, "no view is given");
    }

    [Test]
    public async Task Prepare_RegistryAllowedAsInsecure_Proceeds()
    {
        var reference = await PushBootImageAsync("step/allowedinsecure", "KERNEL-A");
        var (step, _, _) = NewStep(registries: new RegistryAllowList([], [Registry.Host.ToUpperInvariant()]));

        var (results, context) = await RunUntilDoneAsync(step, Vm("u-ai", reference));

        results[^1].Outcome.Should().Be(StartStepOutcome.Proceed, string.Join(" | ", results.Select(r => r.Message)));
        File.ReadAllText(context.Vm.Spec.Kernel.Image).Should().Be("KERNEL-A");
    }

    [Test]
    public async Task Prepare_KernelAndInitrdReferences_WaitsPullingThenProceedsWithCachedFilesTrusted()
    {
        var reference = await PushBootImageAsync("step/boot", "KERNEL-1");
        var (step, cache, _) = NewStep();
        var vm = Vm("u1", reference, reference);

        var (results, context) = await RunUntilDoneAsync(step, vm);

        results[0].Outcome.Should().Be(StartStepOutcome.Wait, "the first look only starts the pull in the background");
        results[0].Reason.Should().Be(ImagesStartStep.ReasonPulling);
        ImageReady(results[0])!.Status.Should().Be(ConditionStatus.False);
        results[0].RetryAfter.Should().Be(TimeSpan.FromMilliseconds(100));
        var last = results[^1];
        last.Outcome.Should().Be(StartStepOutcome.Proceed, string.Join(" | ", results.Select(r => r.Message)));
        var ready = ImageReady(last)!;
        ready.Status.Should().Be(ConditionStatus.True);
        ready.Message.Should().Contain(reference).And.Contain("sha256:");
        var images = last.Status!(MicroVmStatus.Initial).Images;
        images.Should().ContainSingle("kernel and initrd name one reference");
        images[0].Should().Match<ImageStatus>(i => i.Reference == reference && i.State == "Ready" && i.Digest!.StartsWith("sha256:") && i.BytesDone == i.BytesTotal && i.BytesTotal > 0);
        var first = results[0].Status!(MicroVmStatus.Initial).Images.Should().ContainSingle().Subject;
        first.State.Should().BeOneOf("Resolving", "Pulling", "Unpacking");
        first.Reference.Should().Be(reference);

        var kernel = context.Vm.Spec.Kernel.Image;
        kernel.Should().StartWith(cache.Root + "/trees/");
        File.ReadAllText(kernel).Should().Be("KERNEL-1");
        File.ReadAllText(context.Vm.Spec.Initrd!.Image).Should().Be("INITRD");
        context.TrustedPaths.Should().BeEquivalentTo([kernel, context.Vm.Spec.Initrd.Image]);
        context.Stored.Spec.Kernel.Image.Should().Be(reference, "the stored record is never changed");
        cache.List().Should().ContainSingle().Which.Users.Should().Equal("u1");
    }

    [Test]
    public async Task Prepare_Progress_MessageCarriesBytesDoneAndTotal()
    {
        await Pusher.PushAsync("step/big", "1", TestImages.Image("amd64",
            TestImages.Layer(new FileEntry("boot/vmlinux", "K")), TestImages.RandomLayer(24 * 1024 * 1024)));
        var (step, _, _) = NewStep();
        var vm = Vm("u-progress", $"{Registry.Host}/step/big:1");

        var (results, _) = await RunUntilDoneAsync(step, vm);

        results[^1].Outcome.Should().Be(StartStepOutcome.Proceed);
        results.Where(r => r.Reason == ImagesStartStep.ReasonPulling).Select(r => r.Message)
            .Should().Contain(m => m.Contains(" MiB (", StringComparison.Ordinal) && m.Contains(" bytes)", StringComparison.Ordinal) || m.Contains("resolving") || m.Contains("unpacking"));
    }

    [Test]
    public async Task Prepare_WritableVolumeReference_ViewNamesTheCachedDiskAndAsksForACopyOnWriteView()
    {
        await Pusher.PushAsync("step/rootfs", "1", TestImages.Image("amd64",
            TestImages.Layer(new DirEntry("etc"), new FileEntry("etc/marker", "from-image"))));
        var rootfs = $"{Registry.Host}/step/rootfs:1";
        var kernelRef = await PushBootImageAsync("step/boot2");
        var (step, cache, _) = NewStep();
        var vm = Vm("u-vol", kernelRef, null,
            new VolumeSpec { Id = "root", ContainerSource = rootfs },
            new VolumeSpec { Id = "shared", ContainerSource = rootfs, IsReadOnly = true },
            new VolumeSpec { Id = "scratch", SizeInMb = 8 });

        var (results, context) = await RunUntilDoneAsync(step, vm);

        results[^1].Outcome.Should().Be(StartStepOutcome.Proceed, string.Join(" | ", results.Select(r => r.Message)));
        var root = context.Vm.Spec.RootVolume!;
        root.ContainerSource.Should().BeNull();
        root.HostPath.Should().StartWith(cache.Root + "/disks/").And.EndWith(".ext4");
        context.Vm.Spec.AdditionalVolumes[0].HostPath.Should().Be(root.HostPath, "one cached disk per image");
        context.Vm.Spec.AdditionalVolumes[1].Should().Be(vm.Spec.AdditionalVolumes[1], "a scratch volume is not the images step's");
        context.TrustedPaths.Should().Contain(root.HostPath);
        context.Items[ImageSources.CopyOnWriteVolumesItem].Should().BeAssignableTo<ISet<string>>()
            .Which.Should().BeEquivalentTo(["root"], "read-only volumes share the cached disk");
        var (code, stdout, _) = await Tools.RunAsync("debugfs", "-R", "cat /etc/marker", root.HostPath);
        code.Should().Be(0);
        stdout.Should().Contain("from-image");
    }

    [Test]
    public async Task Prepare_SizeInMbBelowTheImagesDisk_FailsVolumeTooSmallNamingTheNeededSize_AboveIt_ProceedsKeepingTheSize()
    {
        await Pusher.PushAsync("step/sized", "1", TestImages.Image("amd64", TestImages.Layer(new FileEntry("marker", "sized"))));
        var rootfs = $"{Registry.Host}/step/sized:1";
        var (step, cache, _) = NewStep();

        var (small, _) = await RunUntilDoneAsync(step, Vm("u-small", "/boot/vmlinuz", null, new VolumeSpec { Id = "root", ContainerSource = rootfs, SizeInMb = 1 }));

        var disk = Directory.EnumerateFiles(Path.Combine(cache.Root, "disks"), "*.ext4").Single();
        var neededMb = (new FileInfo(disk).Length + 1048575) / 1048576;
        neededMb.Should().BeGreaterThan(1);
        var last = small[^1];
        last.Outcome.Should().Be(StartStepOutcome.Fail, string.Join(" | ", small.Select(r => r.Message)));
        last.Reason.Should().Be(ImagesStartStep.ReasonVolumeTooSmall);
        last.Message.Should().Contain($"root_volume size_in_mb 1 is smaller than its image {rootfs}").And.Contain($"give size_in_mb {neededMb} or more");
        ImageReady(last)!.Reason.Should().Be(ImagesStartStep.ReasonVolumeTooSmall);

        var (big, context) = await RunUntilDoneAsync(step, Vm("u-big", "/boot/vmlinuz", null, new VolumeSpec { Id = "root", ContainerSource = rootfs, SizeInMb = (int)neededMb + 100 }));

        big[^1].Outcome.Should().Be(StartStepOutcome.Proceed, string.Join(" | ", big.Select(r => r.Message)));
        context.Vm.Spec.RootVolume!.HostPath.Should().Be(disk);
        context.Vm.Spec.RootVolume.SizeInMb.Should().Be((int)neededMb + 100, "the driver grows this VM's own view to it");
    }

    [Test]
    public async Task Prepare_TwoVmsOneImage_PullEachBlobOnceAndBothAreUsers()
    {
        var reference = await PushBootImageAsync("step/shared", "SHARED");
        var (step, cache, counter) = NewStep();

        var first = RunUntilDoneAsync(step, Vm("a", reference));
        var second = RunUntilDoneAsync(step, Vm("b", reference));
        var done = await Task.WhenAll(first, second);

        done.Should().AllSatisfy(d => d.Results[^1].Outcome.Should().Be(StartStepOutcome.Proceed));
        done[0].Context.Vm.Spec.Kernel.Image.Should().Be(done[1].Context.Vm.Spec.Kernel.Image);
        var image = cache.List().Should().ContainSingle().Subject;
        image.Users.Should().BeEquivalentTo(["a", "b"]);
        foreach (var layer in counter.Requests.Where(r => r.Path.Contains("/blobs/", StringComparison.Ordinal)).GroupBy(r => r.Path))
            layer.Count().Should().Be(1, $"{layer.Key} is fetched once however many VMs ask");
    }

    [Test]
    public async Task Prepare_UnknownTag_WaitsInImagePullBackOffWithTheRegistrysWords()
    {
        var (step, _, _) = NewStep();
        var vm = Vm("u-tag", $"{Registry.Host}/step/nothing:missing");

        var (results, _) = await RunUntilDoneAsync(step, vm, r => r.Reason == ImagesStartStep.ReasonPullBackOff);

        var last = results[^1];
        last.Outcome.Should().Be(StartStepOutcome.Wait);
        last.Reason.Should().Be(ImagesStartStep.ReasonPullBackOff);
        last.Message.Should().Contain("step/nothing:missing").And.Contain("MANIFEST_UNKNOWN: manifest unknown").And.Contain("retrying in");
        last.RetryAfter.Should().BeGreaterThan(TimeSpan.Zero);
        ImageReady(last)!.Reason.Should().Be(ImagesStartStep.ReasonPullBackOff);
        var image = last.Status!(MicroVmStatus.Initial).Images.Should().ContainSingle().Subject;
        image.State.Should().Be("BackOff");
        image.Digest.Should().BeNull();
        image.Message.Should().Contain("MANIFEST_UNKNOWN");
    }

    [Test]
    public async Task Prepare_RegistryDown_BacksOffLongerEachTimeUpToTheCap()
    {
        var down = $"127.0.0.1:{Tools.FreePort()}";
        var (step, _, _) = NewStep(insecureHost: down);
        var vm = Vm("u-down", $"{down}/step/boot:1");

        var attempts = new List<StartStepResult>();
        var deadline = DateTime.UtcNow + Patience;
        while (!attempts.Any(r => r.Message.Contains("(attempt 4)", StringComparison.Ordinal)) && DateTime.UtcNow < deadline)
        {
            var result = await step.PrepareAsync(new StartContext(vm), CancellationToken.None);
            result.Outcome.Should().Be(StartStepOutcome.Wait);
            attempts.Add(result);
            await Task.Delay(TimeSpan.FromMilliseconds(50));
        }

        var backoffs = attempts.Where(r => r.Reason == ImagesStartStep.ReasonPullBackOff).ToList();
        backoffs.Should().NotBeEmpty();
        backoffs[0].Message.Should().Contain(down).And.ContainAny("refused", "unreachable", "did not answer");
        var firstOfEach = backoffs.GroupBy(r => System.Text.RegularExpressions.Regex.Match(r.Message, @"\(attempt \d\)").Value)
            .Select(g => g.First().RetryAfter).ToList();
        firstOfEach.Should().HaveCountGreaterThanOrEqualTo(3);
        firstOfEach.Should().BeInAscendingOrder("the backoff grows after each failed pull");
        firstOfEach.Should().AllSatisfy(t => t.Should().BeLessThanOrEqualTo(TimeSpan.FromSeconds(2), "capped"));
    }

    [Test]
    public async Task Prepare_ImageWithoutKernel_WaitsNamingTheMissingFile()
    {
        var reference = await PushBootImageAsync("step/nokernel", withKernel: false);
        var (step, _, _) = NewStep();

        var (results, _) = await RunUntilDoneAsync(step, Vm("u-nok", reference), r => r.Reason == ImagesStartStep.ReasonPullBackOff);

        results[^1].Reason.Should().Be(ImagesStartStep.ReasonPullBackOff);
        results[^1].Message.Should().Contain(reference).And.Contain("no kernel file at boot/vmlinux or boot/vmlinuz");
    }

    [Test]
    public async Task Prepare_CachedImageWithDefaultOptions_ProceedsInTheFirstReconcileWithinTheFastPath()
    {
        var reference = await PushBootImageAsync("step/cached", "CACHED");
        var (warm, cache, _) = NewStep();
        (await RunUntilDoneAsync(warm, Vm("first", reference))).Results[^1].Outcome.Should().Be(StartStepOutcome.Proceed);
        var step = new ImagesStartStep(cache, TimeProvider.System); // what the daemon runs: default options
        Disposables.Add(step);
        var context = new StartContext(Vm("second", reference));

        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        var result = await step.PrepareAsync(context, CancellationToken.None);
        var took = stopwatch.Elapsed;

        result.Outcome.Should().Be(StartStepOutcome.Proceed, result.Message);
        File.ReadAllText(context.Vm.Spec.Kernel.Image).Should().Be("CACHED");
        TestContext.Progress.WriteLine($"[measure] images step, cached image, new VM: {took.TotalMilliseconds:0.0} ms (one manifest GET)");
    }

    [Test]
    public async Task Prepare_NoReferences_ProceedsWithoutTouchingTheVm()
    {
        var (step, cache, counter) = NewStep();
        var vm = Vm("u-local", "/var/lib/hypercore/images/default/vmlinuz", null, new VolumeSpec { Id = "root", HostPath = "/var/lib/hypercore/volumes/r.img" });
        var context = new StartContext(vm);

        var result = await step.PrepareAsync(context, CancellationToken.None);

        result.Outcome.Should().Be(StartStepOutcome.Proceed);
        result.Status.Should().BeNull("a VM without images gets no ImageReady condition");
        context.Vm.Should().BeSameAs(vm);
        context.TrustedPaths.Should().BeEmpty();
        counter.Requests.Should().BeEmpty();
        cache.List().Should().BeEmpty();
    }

    [Test]
    public async Task Release_DropsTheVmAsUser_SoPruneEmptiesTheCache()
    {
        var reference = await PushBootImageAsync("step/release");
        var (step, cache, _) = NewStep();
        var vm = Vm("u-rel", reference);
        (await RunUntilDoneAsync(step, vm)).Results[^1].Outcome.Should().Be(StartStepOutcome.Proceed);
        (await cache.PruneAsync(CancellationToken.None)).Should().BeEmpty("the VM still uses it");

        await step.ReleaseAsync(vm, CancellationToken.None);
        await step.ReleaseAsync(vm, CancellationToken.None); // safe twice
        var pruned = await cache.PruneAsync(CancellationToken.None);

        pruned.Should().ContainSingle();
        cache.List().Should().BeEmpty();
        cache.SizeBytes().Should().Be(0);
    }

    [Test]
    public async Task Prepare_MalformedReference_FailsNamingTheField()
    {
        var (step, _, _) = NewStep();
        var vm = Vm("u-bad", $"{Registry.Host}/Step/UPPER:1");

        var result = await step.PrepareAsync(new StartContext(vm), CancellationToken.None);

        result.Outcome.Should().Be(StartStepOutcome.Fail);
        result.Reason.Should().Be(ImagesStartStep.ReasonInvalidReference);
        result.Message.Should().StartWith("kernel.image:");
    }
}
