using System.Net;
using System.Text;
using System.Text.Json;
using Hypercore.Api.Tests.Hosting;
using Hypercore.MicroVms;
using Hypercore.Store;

namespace Hypercore.Api.Tests.HttpJson;

/// <summary>What the HTTP/JSON gateway does beyond the recorded answers: interceptors, streams, query values.</summary>
public sealed class HttpJsonGatewayTests
{
    private const string Create = """{"microvm":{"id":"web1","namespace":"demo","vcpu":1,"memoryInMb":128,"kernel":{"image":"/boot/vmlinuz"}}}""";

    private ApiTestServer _server = null!;

    [SetUp]
    public async Task SetUp() => _server = await ApiTestServer.StartAsync();

    [TearDown]
    public async Task TearDown() => await _server.DisposeAsync();

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task<JsonElement> ErrorAsync(HttpResponseMessage response, HttpStatusCode status, int code)
    {
        var text = await response.Content.ReadAsStringAsync();
        response.StatusCode.Should().Be(status, text);
        response.Content.Headers.ContentType!.MediaType.Should().Be("application/json");
        var body = JsonDocument.Parse(text).RootElement;
        body.GetProperty("code").GetInt32().Should().Be(code);
        body.GetProperty("details").GetArrayLength().Should().Be(0);
        return body;
    }

    [Test]
    public async Task StoreOutage_GoesThroughTheGrpcInterceptor_Returns503Unavailable()
    {
        _server.Store.Outage = new StoreException("database is locked");

        using var response = await _server.Http.GetAsync("/v1/microvms/web1?namespace=demo");

        var body = await ErrorAsync(response, HttpStatusCode.ServiceUnavailable, 14);
        body.GetProperty("message").GetString().Should().Be("store unavailable: database is locked");
    }

    [Test]
    public async Task MalformedJson_Returns400WithTheParserReason_AndWritesNothing()
    {
        using var response = await _server.Http.PostAsync("/v1/microvms", Json("""{"microvm":{"id":"web1","vcpu":"many"}}"""));

        var body = await ErrorAsync(response, HttpStatusCode.BadRequest, 3);
        body.GetProperty("message").GetString().Should().StartWith("Request JSON payload is not correctly formatted.").And.Contain("many", "the parser names the value it could not read");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task NullForAMapField_Returns400NamingTheField()
    {
        using var response = await _server.Http.PostAsync("/v1/microvms",
            Json("""{"microvm":{"id":"web1","vcpu":1,"memoryInMb":128,"kernel":{"image":"/boot/vmlinuz","cmdline":null}}}"""));

        var body = await ErrorAsync(response, HttpStatusCode.BadRequest, 3);
        body.GetProperty("message").GetString().Should().Contain("\"cmdline\"");
        (await _server.StoredAsync()).Should().BeEmpty();
    }

    [Test]
    public async Task QueryValueOfTheWrongType_Returns400NamingTheKey()
    {
        using var response = await _server.Http.GetAsync("/v1/microvms/web1/logs?namespace=demo&tailLines=ten");

        var body = await ErrorAsync(response, HttpStatusCode.BadRequest, 3);
        body.GetProperty("message").GetString().Should().Contain("\"tailLines\"").And.Contain("ten");
    }

    [Test]
    public async Task Logs_StreamsOneJsonLinePerChunk_WithQueryFieldsByEitherName()
    {
        (await _server.Http.PostAsync("/v1/microvms", Json(Create))).StatusCode.Should().Be(HttpStatusCode.OK);
        var vm = (await _server.Store.Inner.GetAsync(new VmKey("demo", "web1")))!;
        await _server.Store.Inner.UpdateStatusAsync(vm.Key, vm.Status with { Phase = Phase.Running }, vm.ResourceVersion);
        var console = Path.Combine(_server.Drivers[0].RuntimeDirectory, vm.Uid, "console.log");
        Directory.CreateDirectory(Path.GetDirectoryName(console)!);
        await File.WriteAllTextAsync(console, "one\ntwo\nthree\n");

        var camel = await _server.Http.GetStringAsync("/v1/microvms/web1/logs?namespace=demo&tailLines=2");
        var snake = await _server.Http.GetStringAsync("/v1/microvms/web1/logs?namespace=demo&tail_lines=2");

        camel.Should().EndWith("\n").And.Be(snake);
        var lines = camel.TrimEnd('\n').Split('\n');
        var text = string.Concat(lines.Select(l => Encoding.UTF8.GetString(Convert.FromBase64String(JsonDocument.Parse(l).RootElement.GetProperty("data").GetString()!))));
        text.Should().Be("two\nthree\n");
    }

    [Test]
    public async Task Watch_SendsAChangeAsANewLine_AndEndsWhenTheClientGoes()
    {
        (await _server.Http.PostAsync("/v1/microvms", Json(Create))).StatusCode.Should().Be(HttpStatusCode.OK);
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var response = await _server.Http.GetAsync("/v1/microvms:watch?namespace=demo", HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel.Token));

        var added = JsonDocument.Parse((await reader.ReadLineAsync(cancel.Token))!).RootElement;
        (await _server.Http.PostAsync("/v1/microvms/web1:stop", Json("""{"namespace":"demo"}"""))).StatusCode.Should().Be(HttpStatusCode.OK);
        var modified = JsonDocument.Parse((await reader.ReadLineAsync(cancel.Token))!).RootElement;

        added.GetProperty("type").GetString().Should().Be("ADDED");
        modified.GetProperty("type").GetString().Should().Be("MODIFIED");
        modified.GetProperty("microvm").GetProperty("spec").GetProperty("state").GetString().Should().Be("Stopped");
        modified.GetProperty("microvm").GetProperty("spec").GetProperty("generation").ValueKind.Should().Be(JsonValueKind.Number, "int64 as a JSON number, as transcoding wrote it");
    }
}
