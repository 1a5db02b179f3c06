using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests.Hostile;

/// <summary>
/// A caller naming host files it was not given, through the real vistarad with its host-access defaults (kernels
/// only from &lt;state-dir&gt;/images, volumes only from &lt;state-dir&gt;/volumes, no block devices). Every case
/// must come back as InvalidArgument (HTTP 400, gRPC code 3) naming the path, with nothing written (List empty,
/// Get NotFound, no VM directory) and no hypervisor process started.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class HostPathHostileTests
{
    private Node _node = null!;
    private Socket? _socket;

    private string Images => Path.Combine(_node.StateDir, "images");

    private string Volumes => Path.Combine(_node.StateDir, "volumes");

    [OneTimeSetUp]
    public async Task StartNode()
    {
        _node = await Node.StartWithDefaultHostAccessAsync();
        Directory.CreateDirectory(Volumes);
        File.WriteAllText(Path.Combine(Volumes, "ok.img"), "a volume the node hands out");

        // An image whose kernel is a symlink out of the image directory, and one whose kernel is a FIFO.
        Directory.CreateDirectory(Path.Combine(Images, "linked"));
        File.CreateSymbolicLink(Path.Combine(Images, "linked", "vmlinuz"), "/etc/shadow");
        Directory.CreateDirectory(Path.Combine(Images, "fifo"));
        Run("mkfifo", Path.Combine(Images, "fifo", "vmlinuz"));

        // Hostile things inside the volume root: a block device, a character device, a FIFO, a socket, a link out.
        Run("mknod", Path.Combine(Volumes, "blk"), "b", "7", "0");
        Run("mknod", Path.Combine(Volumes, "null"), "c", "1", "3");
        Run("mkfifo", Path.Combine(Volumes, "fifo"));
        // Kept open for the fixture: .NET unlinks the socket file when the socket is disposed.
        _socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _socket.Bind(new UnixDomainSocketEndPoint(Path.Combine(Volumes, "sock")));

        File.CreateSymbolicLink(Path.Combine(Volumes, "shadow"), "/etc/shadow");
        File.WriteAllText(Path.Combine(_node.Root, "kernel-outside"), "a kernel nobody allowed");
    }

    [OneTimeTearDown]
    public async Task StopNode()
    {
        _socket?.Dispose();
        await _node.DisposeAsync();
    }

    private static void Run(string file, params string[] args)
    {
        using var p = Process.Start(file, args);
        p.WaitForExit();
        p.ExitCode.Should().Be(0, $"{file} {string.Join(' ', args)}");
    }

    private IEnumerable<string> VmDirectories()
    {
        var run = Path.Combine(_node.StateDir, "run");
        return Directory.Exists(run) ? Directory.EnumerateDirectories(run).SelectMany(Directory.EnumerateDirectories) : [];
    }

    private string DefaultKernel => Path.Combine(Images, "default", "vmlinuz");

    private static JsonObject Kernel(string image, string? filename = null)
    {
        var kernel = new JsonObject { ["image"] = image };
        if (filename is not null)
        {
            kernel["filename"] = filename;
        }

        return kernel;
    }

    private static JsonObject Volume(string id, string hostPath, bool readOnly = false) =>
        new() { ["id"] = id, ["isReadOnly"] = readOnly, ["source"] = new JsonObject { ["hostPath"] = hostPath } };

    /// <summary>Creates over HTTP/JSON and asserts the refusal, that nothing was written and that no VMM runs.</summary>
    private async Task AssertRefusedAsync(string id, JsonObject microvm, string expected)
    {
        microvm["id"] = id;
        microvm["namespace"] = "hostile";
        microvm["vcpu"] = 1; // a spec valid in every other way, so the refusal is the host-path policy's alone
        microvm["memoryInMb"] = 128;
        microvm["provider"] ??= "qemu";
        var body = new JsonObject { ["microvm"] = microvm }.ToJsonString();

        using var response = await _node.Http.PostAsync("/v1/microvms", new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest, text);
        var error = JsonNode.Parse(text)!;
        error["code"]!.GetValue<int>().Should().Be(3, "gRPC InvalidArgument: " + text);
        var message = error["message"]!.GetValue<string>();
        message.Should().Contain(expected);
        message.Should().NotContain("vcpu").And.NotContain("memory_in_mb");

        using var get = await _node.Http.GetAsync($"/v1/microvms/{id}?namespace=hostile");
        get.StatusCode.Should().Be(HttpStatusCode.NotFound, "nothing was written");
        using var list = await _node.Http.GetAsync("/v1/microvms");
        var listed = JsonNode.Parse(await list.Content.ReadAsStringAsync())!.AsObject();
        listed.Select(kv => kv.Value).OfType<JsonArray>().SelectMany(a => a).Should().BeEmpty("List stays empty");
        VmDirectories().Should().BeEmpty("no VM directory was made for any provider");
        ProcFs.FindByCommandLine(Path.Combine(_node.StateDir, "run")).Should().BeEmpty("no hypervisor process was started");
        _node.Daemon.HasExited.Should().BeFalse();
    }

    [Test]
    public Task Create_KernelEtcShadow_ReturnsInvalidArgument() =>
        AssertRefusedAsync("k-shadow", new JsonObject { ["kernel"] = Kernel("/etc/shadow") },
            "kernel /etc/shadow is outside the image directories");

    [Test]
    public Task Create_AbsoluteKernelOutsideTheRoots_ReturnsInvalidArgument() =>
        AssertRefusedAsync("k-outside", new JsonObject { ["kernel"] = Kernel(Path.Combine(_node.Root, "kernel-outside")) },
            "to allow it on purpose, add its directory to the vistarad setting kernel-roots (--kernel-roots)");

    [Test]
    public Task Create_InitrdEtcShadow_ReturnsInvalidArgument() =>
        AssertRefusedAsync("i-shadow", new JsonObject { ["kernel"] = Kernel(DefaultKernel), ["initrd"] = new JsonObject { ["image"] = "/etc/shadow" } },
            "initrd /etc/shadow is outside the image directories");

    [Test]
    public Task Create_VolumeEtcShadow_ReturnsInvalidArgument() =>
        AssertRefusedAsync("v-shadow", new JsonObject { ["kernel"] = Kernel("default"), ["additionalVolumes"] = new JsonArray(Volume("x", "/etc/shadow")) },
            "volume \"x\": /etc/shadow is outside the volume roots");

    [Test]
    public Task Create_RootVolumeEtcShadow_ReturnsInvalidArgument() =>
        AssertRefusedAsync("r-shadow", new JsonObject { ["kernel"] = Kernel("default"), ["rootVolume"] = Volume("root", "/etc/shadow") },
            "root_volume: /etc/shadow is outside the volume roots");

    [Test]
    public Task Create_UnlistedBlockDevice_ReturnsInvalidArgument() =>
        AssertRefusedAsync("v-blk", new JsonObject { ["kernel"] = Kernel("default"), ["additionalVolumes"] = new JsonArray(Volume("b", Path.Combine(Volumes, "blk"))) },
            "is a block device that is not listed; to allow it on purpose, add");

    [Test]
    public Task Create_CharacterDeviceInTheVolumeRoot_ReturnsInvalidArgument() =>
        AssertRefusedAsync("v-chr", new JsonObject { ["kernel"] = Kernel("default"), ["additionalVolumes"] = new JsonArray(Volume("n", Path.Combine(Volumes, "null"))) },
            "is a character device");

    [Test]
    public Task Create_DevNull_ReturnsInvalidArgument() =>
        AssertRefusedAsync("v-devnull", new JsonObject { ["kernel"] = Kernel("default"), ["additionalVolumes"] = new JsonArray(Volume("n", "/dev/null")) },
            "/dev/null is outside the volume roots");

    [Test]
    public Task Create_FifoVolume_ReturnsInvalidArgument() =>
        AssertRefusedAsync("v-fifo", new JsonObject { ["kernel"] = Kernel("default"), ["additionalVolumes"] = new JsonArray(Volume("f", Path.Combine(Volumes, "fifo"))) },
            "is a FIFO");

    [Test]
    public Task Create_SocketVolume_ReturnsInvalidArgument() =>
        AssertRefusedAsync("v-sock", new JsonObject { ["kernel"] = Kernel("default"), ["additionalVolumes"] = new JsonArray(Volume("s", Path.Combine(Volumes, "sock"))) },
            "is a socket");

    [Test]
    public Task Create_VolumeSymlinkOutOfTheRoot_ReturnsInvalidArgument() =>
        AssertRefusedAsync("v-link", new JsonObject { ["kernel"] = Kernel("default"), ["additionalVolumes"] = new JsonArray(Volume("l", Path.Combine(Volumes, "shadow"))) },
            "(resolves to /etc/shadow) is outside the volume roots");

    [Test]
    public Task Create_DirectoryAsVolume_ReturnsInvalidArgument() =>
        AssertRefusedAsync("v-dir", new JsonObject { ["kernel"] = Kernel("default"), ["additionalVolumes"] = new JsonArray(Volume("d", Volumes)) },
            "is a directory");

    [Test]
    public Task Create_ImageWhoseKernelLinksOut_ReturnsInvalidArgument() =>
        AssertRefusedAsync("k-link", new JsonObject { ["kernel"] = Kernel("linked") },
            "(resolves to /etc/shadow) is outside the image directories");

    [Test]
    public Task Create_ImageWhoseKernelIsAFifo_ReturnsInvalidArgument() =>
        AssertRefusedAsync("k-fifo", new JsonObject { ["kernel"] = Kernel("fifo") },
            "is a FIFO; a kernel must be a regular file");

    [Test]
    public Task Create_DirectoryAsKernel_ReturnsInvalidArgument() =>
        AssertRefusedAsync("k-dir", new JsonObject { ["kernel"] = Kernel(Path.Combine(Images, "default")) },
            "is a directory; a kernel must be a regular file");

    [Test]
    public Task Create_DotDotInTheImageName_ReturnsInvalidArgument() =>
        AssertRefusedAsync("k-dotdot-name", new JsonObject { ["kernel"] = Kernel("../images/default") },
            "kernel.image \"../images/default\" is neither an absolute path nor an image");

    [Test]
    public Task Create_DotDotInAnAbsoluteKernelPath_ReturnsInvalidArgument() =>
        AssertRefusedAsync("k-dotdot-path", new JsonObject { ["kernel"] = Kernel(Path.Combine(Images, "default", "..", "..", "hypercore.db")) },
            "contains \"..\"");

    [Test]
    public Task Create_DotDotInKernelFilename_ReturnsInvalidArgument() =>
        AssertRefusedAsync("k-dotdot-file", new JsonObject { ["kernel"] = Kernel(Path.Combine(Images, "default"), "../../hypercore.db") },
            "kernel.filename \"../../hypercore.db\" must be a relative path inside kernel.image");

    [Test]
    public Task Create_AbsoluteKernelFilename_ReturnsInvalidArgument() =>
        AssertRefusedAsync("k-abs-file", new JsonObject { ["kernel"] = Kernel(Path.Combine(Images, "default"), "/etc/shadow") },
            "kernel.filename \"/etc/shadow\" must be a relative path");

    [Test]
    public Task Create_WritableVolumeFromTheImageDirectory_ReturnsInvalidArgument() =>
        AssertRefusedAsync("v-image-rw", new JsonObject { ["kernel"] = Kernel("default"), ["additionalVolumes"] = new JsonArray(Volume("w", DefaultKernel)) },
            "read-only volumes may also come from the image directories");

    [Test]
    public Task Create_SeveralViolations_AllNamedInOneInvalidArgument() =>
        AssertRefusedAsync("many", new JsonObject
        {
            ["kernel"] = Kernel("/etc/shadow"),
            ["additionalVolumes"] = new JsonArray(Volume("a", "/etc/passwd"), Volume("b", "/dev/null")),
        }, "volume \"b\": /dev/null is outside the volume roots");

    [Test]
    public async Task Create_VolumeInTheVolumeRoot_IsAccepted_SoTheRefusalsAboveAreThePolicyNotABrokenNode()
    {
        var body = new JsonObject
        {
            ["microvm"] = new JsonObject
            {
                ["id"] = "allowed", ["namespace"] = "hostile-ok", ["provider"] = "qemu", ["state"] = "Stopped", ["vcpu"] = 1, ["memoryInMb"] = 128,
                ["kernel"] = Kernel("default"),
                ["additionalVolumes"] = new JsonArray(Volume("ok", Path.Combine(Volumes, "ok.img"), readOnly: true)),
            },
        }.ToJsonString();

        using var response = await _node.Http.PostAsync("/v1/microvms", new StringContent(body, Encoding.UTF8, "application/json"));

        response.StatusCode.Should().Be(HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        await _node.ForceDeleteAsync("hostile-ok", "allowed");
    }

    [Test]
    public async Task Start_VolumeSwappedForALinkOutAfterCreate_DriverRefusesWithReadyFalseHostPathNotAllowed()
    {
        // The API's check passed at Create; the prepared-spec step checks again right before the start, so a file
        // swapped for a symlink to /etc/shadow in between is refused there and shown in the VM's conditions.
        var volume = Path.Combine(Volumes, "swapped.img");
        File.WriteAllText(volume, "fine at create time");
        var body = new JsonObject
        {
            ["microvm"] = new JsonObject
            {
                ["id"] = "swapped", ["namespace"] = "hostile-swap", ["provider"] = "qemu", ["state"] = "Stopped", ["vcpu"] = 1, ["memoryInMb"] = 128,
                ["kernel"] = Kernel("default"),
                ["additionalVolumes"] = new JsonArray(Volume("data", volume)),
            },
        }.ToJsonString();
        using (var created = await _node.Http.PostAsync("/v1/microvms", new StringContent(body, Encoding.UTF8, "application/json")))
        {
            created.StatusCode.Should().Be(HttpStatusCode.OK, await created.Content.ReadAsStringAsync());
        }

        try
        {
            File.Delete(volume);
            File.CreateSymbolicLink(volume, "/etc/shadow");
            using (var start = await _node.Http.PostAsync("/v1/microvms/swapped:start?namespace=hostile-swap", new StringContent("{}", Encoding.UTF8, "application/json")))
            {
                start.IsSuccessStatusCode.Should().BeTrue(await start.Content.ReadAsStringAsync());
            }

            var failed = await _node.WaitAsync("hostile-swap", "swapped", v => v.Condition("Ready")?.Reason == "HostPathNotAllowed", "Ready=False HostPathNotAllowed");

            failed.Condition("Ready")!.Value.Status.Should().Be("False");
            failed.Condition("Ready")!.Value.Message.Should().Contain($"{volume} (resolves to /etc/shadow) is outside the volume roots");
            ProcFs.FindByCommandLine(Path.Combine(_node.StateDir, "run")).Should().BeEmpty("no hypervisor process was started");
        }
        finally
        {
            await _node.ForceDeleteAsync("hostile-swap", "swapped");
            File.Delete(volume);
        }
    }
}
