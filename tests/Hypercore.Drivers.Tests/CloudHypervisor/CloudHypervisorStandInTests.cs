using System.Net;
using System.Text.Json.Nodes;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;

namespace Hypercore.Drivers.Tests.CloudHypervisor;

/// <summary>The stand-in keeps Cloud Hypervisor's documented VM state machine and error shape.</summary>
[TestFixture]
[NonParallelizable]
public sealed class CloudHypervisorStandInTests
{
    private Scratch _scratch = null!;
    private UnixSocketApi _api = null!;
    private int _pid;

    [SetUp]
    public async Task SetUp()
    {
        _scratch = new Scratch();
        var socket = Path.Combine(_scratch.Root, "ch.sock");
        _pid = await HostProcess.StartDetachedAsync(StandIns.CloudHypervisor, ["--api-socket", $"path={socket}"], _scratch.Root, Path.Combine(_scratch.Root, "out.log"), default);
        _scratch.Track(_pid);
        _api = new UnixSocketApi(socket, new ApiPolicy(TimeSpan.FromSeconds(10), 20, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)), TimeProvider.System);
        await Eventually.TrueAsync(() => File.Exists(socket), TimeSpan.FromSeconds(60), "the stand-in's API socket");
    }

    [TearDown]
    public async Task TearDown()
    {
        _api.Dispose();
        await _scratch.DisposeAsync();
    }

    private Task<ApiResponse> Put(string endpoint, JsonNode? body = null) => _api.PutAsync("/api/v1/" + endpoint, body, default);

    private JsonObject Config() => new()
    {
        ["payload"] = new JsonObject { ["kernel"] = _scratch.Kernel, ["cmdline"] = "console=ttyS0" },
        ["serial"] = new JsonObject { ["mode"] = "File", ["file"] = Path.Combine(_scratch.Root, "serial.log") },
    };

    [Test]
    public async Task VmInfo_BeforeCreate_Returns404()
    {
        var response = await _api.GetAsync("/api/v1/vm.info", default);

        response.Status.Should().Be(HttpStatusCode.NotFound);
        response.Json!.AsArray().Select(e => e!.GetValue<string>()).Should().Contain("VM is not created");
    }

    [Test]
    public async Task Boot_BeforeCreate_Returns404()
        => (await Put("vm.boot")).Status.Should().Be(HttpStatusCode.NotFound);

    [Test]
    public async Task Pause_BeforeBoot_IsRefused()
    {
        (await Put("vm.create", Config())).Status.Should().Be(HttpStatusCode.NoContent);

        var response = await Put("vm.pause");

        response.Status.Should().Be(HttpStatusCode.MethodNotAllowed);
        (await _api.GetAsync("/api/v1/vm.info", default)).Json!["state"]!.GetValue<string>().Should().Be("Created");
    }

    [Test]
    public async Task CreateBootPauseResume_ReportsEachState()
    {
        (await Put("vm.create", Config())).Status.Should().Be(HttpStatusCode.NoContent);
        (await Put("vm.boot")).Status.Should().Be(HttpStatusCode.NoContent);
        (await _api.GetAsync("/api/v1/vm.info", default)).Json!["state"]!.GetValue<string>().Should().Be("Running");
        (await Put("vm.pause")).Status.Should().Be(HttpStatusCode.NoContent);
        (await _api.GetAsync("/api/v1/vm.info", default)).Json!["state"]!.GetValue<string>().Should().Be("Paused");
        (await Put("vm.resume")).Status.Should().Be(HttpStatusCode.NoContent);
        (await Put("vm.shutdown")).Status.Should().Be(HttpStatusCode.NoContent);
        (await _api.GetAsync("/api/v1/vm.info", default)).Json!["state"]!.GetValue<string>().Should().Be("Shutdown");
    }

    [Test]
    public async Task Create_Twice_Returns500WithErrorArray()
    {
        (await Put("vm.create", Config())).Status.Should().Be(HttpStatusCode.NoContent);

        var response = await Put("vm.create", Config());

        response.Status.Should().Be(HttpStatusCode.InternalServerError);
        response.Json!.AsArray().Should().NotBeEmpty();
    }

    [Test]
    public async Task VmmShutdown_EndsTheProcess()
    {
        (await Put("vmm.shutdown")).Status.Should().Be(HttpStatusCode.NoContent);

        await Eventually.TrueAsync(() => !HostProcess.IsAlive(_pid), TimeSpan.FromSeconds(30), "the VMM to exit after vmm.shutdown");
    }

    [Test]
    public async Task Ping_ReportsVersionAndPid()
    {
        var ping = (await _api.GetAsync("/api/v1/vmm.ping", default)).Json!;

        ping["version"]!.GetValue<string>().Should().NotBeEmpty();
        ping["pid"]!.GetValue<int>().Should().Be(_pid);
    }
}
