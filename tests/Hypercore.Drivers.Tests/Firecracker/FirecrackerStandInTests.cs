using System.Net;
using System.Text.Json.Nodes;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;

namespace Hypercore.Drivers.Tests.Firecracker;

/// <summary>
/// The stand-in itself keeps Firecracker's documented state machine; without these the driver tests would prove
/// nothing about the real API. Each test talks raw HTTP to a freshly started stand-in.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class FirecrackerStandInTests
{
    private Scratch _scratch = null!;
    private UnixSocketApi _api = null!;

    [SetUp]
    public async Task SetUp()
    {
        _scratch = new Scratch();
        var socket = Path.Combine(_scratch.Root, "fc.sock");
        var pid = await HostProcess.StartDetachedAsync(StandIns.Firecracker, ["--api-sock", socket, "--id", "standin-test"], _scratch.Root, Path.Combine(_scratch.Root, "out.log"), default);
        _scratch.Track(pid);
        _api = new UnixSocketApi(socket, new ApiPolicy(TimeSpan.FromSeconds(10), 20, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)), TimeProvider.System);
        await Eventually.TrueAsync(() => File.Exists(socket), TimeSpan.FromSeconds(60), "the stand-in's API socket");
    }

    [TearDown]
    public async Task TearDown()
    {
        _api.Dispose();
        await _scratch.DisposeAsync();
    }

    private async Task<ApiResponse> Put(string path, JsonObject body) => await _api.PutAsync(path, body, default);

    private async Task BootAsync()
    {
        (await Put("/boot-source", new JsonObject { ["kernel_image_path"] = _scratch.Kernel })).Status.Should().Be(HttpStatusCode.NoContent);
        (await Put("/actions", new JsonObject { ["action_type"] = "InstanceStart" })).Status.Should().Be(HttpStatusCode.NoContent);
    }

    [Test]
    public async Task Describe_BeforeBoot_ReportsNotStartedAndTheId()
    {
        var info = (await _api.GetAsync("/", default)).Json!;

        info["state"]!.GetValue<string>().Should().Be("Not started");
        info["id"]!.GetValue<string>().Should().Be("standin-test");
    }

    [Test]
    public async Task InstanceStart_WithoutBootSource_Returns400WithFaultMessage()
    {
        var response = await Put("/actions", new JsonObject { ["action_type"] = "InstanceStart" });

        response.Status.Should().Be(HttpStatusCode.BadRequest);
        response.Json!["fault_message"]!.GetValue<string>().Should().Be("Cannot start microvm without kernel configuration.");
    }

    [Test]
    public async Task PatchVm_BeforeBoot_Returns400()
    {
        var response = await _api.PatchAsync("/vm", new JsonObject { ["state"] = "Paused" }, default);

        response.Status.Should().Be(HttpStatusCode.BadRequest);
        response.Json!["fault_message"]!.GetValue<string>().Should().Contain("not supported before starting the microVM");
    }

    [TestCase("/machine-config")]
    [TestCase("/boot-source")]
    [TestCase("/drives/root")]
    [TestCase("/network-interfaces/eth0")]
    public async Task PreBootResource_AfterBoot_Returns400WithFaultMessage(string path)
    {
        await BootAsync();

        var response = await Put(path, new JsonObject { ["vcpu_count"] = 1, ["mem_size_mib"] = 128 });

        response.Status.Should().Be(HttpStatusCode.BadRequest);
        response.Json!["fault_message"]!.GetValue<string>().Should().Be("The requested operation is not supported after starting the microVM.");
    }

    [Test]
    public async Task PauseResume_AfterBoot_ChangeTheReportedState()
    {
        await BootAsync();

        (await _api.PatchAsync("/vm", new JsonObject { ["state"] = "Paused" }, default)).Status.Should().Be(HttpStatusCode.NoContent);
        (await _api.GetAsync("/", default)).Json!["state"]!.GetValue<string>().Should().Be("Paused");
        (await _api.PatchAsync("/vm", new JsonObject { ["state"] = "Resumed" }, default)).Status.Should().Be(HttpStatusCode.NoContent);
        (await _api.GetAsync("/", default)).Json!["state"]!.GetValue<string>().Should().Be("Running");
    }

    [Test]
    public async Task Drive_MissingBackingFile_Returns400()
    {
        var response = await Put("/drives/root", new JsonObject { ["drive_id"] = "root", ["path_on_host"] = "/nonexistent.img", ["is_root_device"] = true, ["is_read_only"] = false });

        response.Status.Should().Be(HttpStatusCode.BadRequest);
        response.Json!["fault_message"]!.GetValue<string>().Should().StartWith("Unable to create the block device");
    }

    [Test]
    public async Task UnknownPath_Returns400()
    {
        var response = await _api.GetAsync("/nope", default);

        response.Status.Should().Be(HttpStatusCode.BadRequest);
        response.Json!["fault_message"]!.GetValue<string>().Should().Contain("Invalid request method and/or path");
    }
}
