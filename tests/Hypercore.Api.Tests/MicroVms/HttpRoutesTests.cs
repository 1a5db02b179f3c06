using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Hypercore.Api.Tests.Hosting;
using Hypercore.MicroVms;

namespace Hypercore.Api.Tests.MicroVms;

/// <summary>The HTTP/JSON routes (gRPC JSON transcoding from the google.api.http annotations) with a plain HttpClient over HTTP/1.1.</summary>
public sealed class HttpRoutesTests
{
    private ApiTestServer _server = null!;

    [SetUp]
    public async Task SetUp() => _server = await ApiTestServer.StartAsync();

    [TearDown]
    public async Task TearDown() => await _server.DisposeAsync();

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private async Task<JsonElement> ReadAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var text = await response.Content.ReadAsStringAsync();
        response.StatusCode.Should().Be(expected, text);
        response.Version.Should().Be(HttpVersion.Version11);
        return JsonDocument.Parse(text).RootElement;
    }

    private async Task<DesiredState> StoredStateAsync() =>
        (await _server.Store.Inner.GetAsync(new VmKey("demo", "web1")))!.Spec.State;

    [Test]
    public async Task Routes_CreateGetListLifecycleDelete_WorkOverHttpJson()
    {
        var created = await ReadAsync(await _server.Http.PostAsync("/v1/microvms", Json(VmServiceCreateTests.GrpcurlJson)), HttpStatusCode.OK);
        var uid = created.GetProperty("microvm").GetProperty("spec").GetProperty("uid").GetString();
        uid.Should().NotBeNullOrEmpty();
        (await _server.StoredAsync()).Should().ContainSingle().Which.Uid.Should().Be(uid);

        var got = await ReadAsync(await _server.Http.GetAsync("/v1/microvms/web1?namespace=demo"), HttpStatusCode.OK);
        got.GetProperty("microvm").GetProperty("spec").GetProperty("memoryInMb").GetInt32().Should().Be(128);
        got.GetProperty("microvm").GetProperty("status").GetProperty("phase").GetString().Should().Be("Pending");

        var listed = await ReadAsync(await _server.Http.GetAsync("/v1/microvms"), HttpStatusCode.OK);
        listed.GetProperty("microvm").EnumerateArray().Select(v => v.GetProperty("spec").GetProperty("id").GetString()).Should().Equal("web1");
        var filtered = await ReadAsync(await _server.Http.GetAsync("/v1/microvms?namespace=other"), HttpStatusCode.OK);
        (filtered.TryGetProperty("microvm", out var none) ? none.GetArrayLength() : 0).Should().Be(0);

        var paused = await ReadAsync(await _server.Http.PostAsync("/v1/microvms/web1:pause", Json("{}")), HttpStatusCode.OK);
        paused.GetProperty("microvm").GetProperty("spec").GetProperty("state").GetString().Should().Be("Paused");
        (await StoredStateAsync()).Should().Be(DesiredState.Paused);

        await ReadAsync(await _server.Http.PostAsync("/v1/microvms/web1:resume", Json("{}")), HttpStatusCode.OK);
        (await StoredStateAsync()).Should().Be(DesiredState.Running);

        await ReadAsync(await _server.Http.PostAsync("/v1/microvms/web1:stop", Json("""{"namespace":"demo"}""")), HttpStatusCode.OK);
        (await StoredStateAsync()).Should().Be(DesiredState.Stopped);

        await ReadAsync(await _server.Http.PostAsync("/v1/microvms/web1:start", Json("{}")), HttpStatusCode.OK);
        (await StoredStateAsync()).Should().Be(DesiredState.Running);

        await ReadAsync(await _server.Http.DeleteAsync("/v1/microvms/web1?namespace=demo"), HttpStatusCode.OK);
        (await _server.Store.Inner.GetAsync(new VmKey("demo", "web1")))!.IsDeleting.Should().BeTrue();
    }

    [Test]
    public async Task Routes_Errors_MapToHttpStatusCodesAndWriteNothing()
    {
        var badVcpu = VmServiceCreateTests.GrpcurlJson.Replace("\"vcpu\":1", "\"vcpu\":0", StringComparison.Ordinal);
        var bad = await _server.Http.PostAsync("/v1/microvms", Json(badVcpu));
        var missing = await _server.Http.GetAsync("/v1/microvms/ghost?namespace=demo");

        var badBody = await ReadAsync(bad, HttpStatusCode.BadRequest);
        badBody.GetProperty("message").GetString().Should().Contain("vcpu");
        await ReadAsync(missing, HttpStatusCode.NotFound);
        (await _server.StoredAsync()).Should().BeEmpty();

        await ReadAsync(await _server.Http.PostAsync("/v1/microvms", Json(VmServiceCreateTests.GrpcurlJson)), HttpStatusCode.OK);
        var duplicate = await _server.Http.PostAsync("/v1/microvms", Json(VmServiceCreateTests.GrpcurlJson));
        await ReadAsync(duplicate, HttpStatusCode.Conflict);
        (await _server.StoredAsync()).Should().ContainSingle();
    }

    [Test]
    public async Task Routes_PostCreateWithObjectBody_UsesJsonContent()
    {
        var response = await _server.Http.PostAsJsonAsync("/v1/microvms", new
        {
            microvm = new { id = "web2", vcpu = 2, memoryInMb = 256, kernel = new { image = "/boot/vmlinuz" } },
        });

        var body = await ReadAsync(response, HttpStatusCode.OK);
        body.GetProperty("microvm").GetProperty("spec").GetProperty("namespace").GetString().Should().Be("default");
        (await _server.StoredAsync()).Should().ContainSingle().Which.Spec.Vcpu.Should().Be(2);
    }
}
