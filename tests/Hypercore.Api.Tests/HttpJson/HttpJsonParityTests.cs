using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Hypercore.Api.Tests.Fakes;
using Hypercore.Api.Tests.Hosting;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Snapshots;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Api.Tests.HttpJson;

/// <summary>
/// Every HTTP/JSON route, answer for answer, against what ASP.NET Core's gRPC JSON transcoding answered before the
/// gateway replaced it. The expected file (transcoding-golden.txt) was recorded from the transcoding build with
/// HYPERCORE_RECORD_GOLDEN=1 and is never rewritten by a normal run. Uids, timestamps and temp paths are replaced by
/// placeholders; everything else (status, content type, every byte of the body) must match.
/// </summary>
public sealed partial class HttpJsonParityTests
{
    private const string GoldenFile = "transcoding-golden.txt";

    private ApiTestServer _server = null!;
    private DirectoryInfo _snapshotRoot = null!;
    private FakeSnapshotDriver _qemu = null!;

    [SetUp]
    public async Task SetUp()
    {
        _qemu = new FakeSnapshotDriver("qemu");
        _snapshotRoot = Directory.CreateTempSubdirectory("hypercore-aotgw-parity-");
        var unikernel = new FakeDriver("unikernel", DriverCapabilities.GracefulStop);
        _server = await ApiTestServer.StartAsync(services: s =>
        {
            s.AddSingleton(new DriverRegistry([_qemu, unikernel], "qemu"));
            s.AddSnapshots(Path.Combine(_snapshotRoot.FullName, "snapshots"));
        });
    }

    [TearDown]
    public async Task TearDown()
    {
        await _server.DisposeAsync();
        _snapshotRoot.Delete(recursive: true);
    }

    private const string Create = """{"microvm":{"id":"web1","namespace":"demo","vcpu":1,"memoryInMb":128,"kernel":{"image":"/var/lib/hypercore/images/default/vmlinuz","cmdline":{"console":"ttyS0"}},"provider":"qemu","labels":{"app":"web"}}}""";

    /// <summary>The cases, in order (later ones see what earlier ones wrote). Loose: only status and "code" compared.</summary>
    private async Task<List<Answer>> RunAllAsync()
    {
        var answers = new List<Answer>();
        async Task Do(string name, HttpMethod method, string path, string? body = null, bool loose = false, string contentType = "application/json")
        {
            using var request = new HttpRequestMessage(method, path);
            if (body is not null)
            {
                request.Content = new StringContent(body, Encoding.UTF8);
                request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
            }

            using var response = await _server.Http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            answers.Add(new Answer(name, $"{method} {path}", (int)response.StatusCode, response.Content.Headers.ContentType?.ToString() ?? "", Normalize(text), loose));
        }

        await Do("node", HttpMethod.Get, "/v1/node");
        await Do("images-list", HttpMethod.Get, "/v1/images");
        await Do("images-remove", HttpMethod.Delete, "/v1/images/busybox");
        await Do("images-prune", HttpMethod.Post, "/v1/images:prune", "{}");
        await Do("create", HttpMethod.Post, "/v1/microvms", Create);
        await Do("create-duplicate", HttpMethod.Post, "/v1/microvms", Create);
        await Do("create-invalid", HttpMethod.Post, "/v1/microvms", Create.Replace("\"vcpu\":1", "\"vcpu\":0", StringComparison.Ordinal));
        await Do("create-proto-names", HttpMethod.Post, "/v1/microvms",
            """{"microvm":{"id":"web2","namespace":"demo","vcpu":2,"memory_in_mb":256,"kernel":{"image":"/boot/vmlinuz","add_network_config":true},"interfaces":[{"device_id":"eth0","type":"TAP","guest_mac":"02:00:00:00:00:01"}]}}""");
        await Do("create-enum-number-int64-string", HttpMethod.Post, "/v1/microvms",
            """{"microvm":{"id":"web3","namespace":"demo","vcpu":1,"memoryInMb":128,"kernel":{"image":"/boot/vmlinuz"},"interfaces":[{"deviceId":"eth0","type":1}],"generation":"7"}}""");
        await Do("create-any-metadata", HttpMethod.Post, "/v1/microvms",
            """{"microvm":{"id":"web4","namespace":"demo","vcpu":1,"memoryInMb":128,"kernel":{"image":"/boot/vmlinuz"}},"metadata":{"user-data":{"@type":"type.googleapis.com/google.protobuf.StringValue","value":"#cloud-config\n"}}}""");
        await Do("create-field-order", HttpMethod.Post, "/v1/microvms",
            """{"microvm":{"id":"web8","namespace":"demo","vcpu":1,"memoryInMb":128,"kernel":{"image":"/boot/vmlinuz"},"readinessProbe":{"console":{"regex":"ready"}},"restoreFrom":"s1","startupProbe":{"console":{"regex":"boot"}},"livenessProbe":{"console":{"regex":"alive"}}}}""");
        await Do("create-null-map", HttpMethod.Post, "/v1/microvms",
            """{"microvm":{"id":"web5","namespace":"demo","vcpu":1,"memoryInMb":128,"kernel":{"image":"/boot/vmlinuz"},"labels":null}}""", loose: true);
        await Do("create-null-scalar", HttpMethod.Post, "/v1/microvms",
            """{"microvm":{"id":"web5","namespace":"demo","vcpu":1,"memoryInMb":128,"kernel":{"image":"/boot/vmlinuz"},"provider":null,"initrd":null}}""", loose: true);
        await Do("create-text-content-type-empty", HttpMethod.Post, "/v1/microvms/web1:start", "", contentType: "text/plain", loose: true);
        await Do("create-unknown-field", HttpMethod.Post, "/v1/microvms",
            """{"microvm":{"id":"web6","namespace":"demo","vcpu":1,"memoryInMb":128,"kernel":{"image":"/boot/vmlinuz"},"bogus":1}}""", loose: true);
        await Do("create-malformed", HttpMethod.Post, "/v1/microvms", """{"microvm":{"id":"web7",""", loose: true);
        await Do("create-wrong-type", HttpMethod.Post, "/v1/microvms", """{"microvm":{"id":"web7","vcpu":"many"}}""", loose: true);
        await Do("create-not-object", HttpMethod.Post, "/v1/microvms", "[1,2]", loose: true);
        await Do("create-empty-body", HttpMethod.Post, "/v1/microvms", "", loose: true);
        await Do("get", HttpMethod.Get, "/v1/microvms/web1?namespace=demo");
        await Do("get-missing", HttpMethod.Get, "/v1/microvms/ghost?namespace=demo");
        await Do("get-ambiguous", HttpMethod.Get, "/v1/microvms/web1");
        await Do("get-by-uid-query", HttpMethod.Get, "/v1/microvms/x?uid=nope");
        await Do("list", HttpMethod.Get, "/v1/microvms");
        await Do("list-namespace", HttpMethod.Get, "/v1/microvms?namespace=other");
        await Do("list-name", HttpMethod.Get, "/v1/microvms?namespace=demo&name=web2");
        await Do("list-unknown-query", HttpMethod.Get, "/v1/microvms?namespace=demo&bogus=1", loose: true);
        answers.Add(await StreamAsync("watch", "/v1/microvms:watch?namespace=demo&id=web1"));
        answers.Add(await StreamAsync("watch-proto-names", "/v1/microvms:watch?namespace=demo"));
        await Do("pause", HttpMethod.Post, "/v1/microvms/web1:pause", "{}");
        await Do("resume", HttpMethod.Post, "/v1/microvms/web1:resume", "{}");
        await Do("stop", HttpMethod.Post, "/v1/microvms/web1:stop", """{"namespace":"demo"}""");
        await Do("start-no-body", HttpMethod.Post, "/v1/microvms/web1:start");
        await Do("pause-unikernel", HttpMethod.Post, "/v1/microvms/web1:pause", """{"namespace":"nope"}""");
        await Do("logs-no-console", HttpMethod.Get, "/v1/microvms/web1/logs?namespace=demo");
        await Do("logs-missing", HttpMethod.Get, "/v1/microvms/ghost/logs?namespace=demo");

        var web1 = (await _server.Store.Inner.GetAsync(new VmKey("demo", "web1")))!;
        await _server.Store.Inner.UpdateStatusAsync(web1.Key, web1.Status with { Phase = Phase.Running }, web1.ResourceVersion);
        await Do("snapshot", HttpMethod.Post, "/v1/microvms/web1:snapshot", """{"namespace":"demo","name":"h1"}""");
        await Do("snapshot-again", HttpMethod.Post, "/v1/microvms/web1:snapshot", """{"namespace":"demo","name":"h1"}""");
        await Do("snapshots-list", HttpMethod.Get, "/v1/snapshots");
        await Do("snapshots-list-filter", HttpMethod.Get, "/v1/snapshots?name=h2");
        await Do("snapshot-delete", HttpMethod.Delete, "/v1/snapshots/h1");
        await Do("snapshot-delete-missing", HttpMethod.Delete, "/v1/snapshots/h1");

        await Do("flintlock-create", HttpMethod.Post, "/v1alpha1/microvm",
            """{"id":"fl1","namespace":"caps","vcpu":1,"memoryInMb":128,"kernel":{"image":"/boot/vmlinuz"},"metadata":{"meta-data":"aW5zdGFuY2VfaWQ6IGZsMQo="},"interfaces":[{"deviceId":"eth0"}]}""");
        var uid = (await _server.StoredAsync()).SingleOrDefault(v => v.Spec.Id == "fl1")?.Uid ?? "not-created";
        await Do("flintlock-get", HttpMethod.Get, $"/v1alpha1/microvm/{uid}");
        await Do("flintlock-get-missing", HttpMethod.Get, "/v1alpha1/microvm/00000000-0000-0000-0000-000000000000");
        await Do("flintlock-list", HttpMethod.Get, "/v1alpha1/microvm?namespace=caps");
        await Do("flintlock-delete", HttpMethod.Delete, $"/v1alpha1/microvm/{uid}");

        await Do("unknown-route", HttpMethod.Get, "/v1/nothing");
        await Do("wrong-verb", HttpMethod.Put, "/v1/microvms", "{}");
        await Do("wrong-verb-node", HttpMethod.Delete, "/v1/node");
        await Do("delete", HttpMethod.Delete, "/v1/microvms/web1?namespace=demo");
        await Do("delete-missing", HttpMethod.Delete, "/v1/microvms/ghost?namespace=demo");
        return answers;
    }

    /// <summary>A server stream that does not end by itself: what arrived in the first seconds (the current records).</summary>
    private async Task<Answer> StreamAsync(string name, string path)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        using var response = await _server.Http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
        var stream = await response.Content.ReadAsStreamAsync();
        var received = new MemoryStream();
        var buffer = new byte[8192];
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, cancel.Token)) > 0)
            {
                received.Write(buffer, 0, n);
            }
        }
        catch (OperationCanceledException)
        {
        }

        return new Answer(name, $"GET {path}", (int)response.StatusCode, response.Content.Headers.ContentType?.ToString() ?? "",
            Normalize(Encoding.UTF8.GetString(received.ToArray()).Replace("\n", "<LF>\n", StringComparison.Ordinal)), Loose: false);
    }

    [Test]
    public async Task EveryRoute_AnswersAsTranscodingDid()
    {
        var answers = await RunAllAsync();
        if (Environment.GetEnvironmentVariable("HYPERCORE_RECORD_GOLDEN") == "1")
        {
            await File.WriteAllTextAsync(Path.Combine(SourceDirectory(), GoldenFile), Render(answers));
            Assert.Inconclusive("recorded " + GoldenFile);
        }

        var expected = Parse(await File.ReadAllTextAsync(Path.Combine(TestContext.CurrentContext.TestDirectory, "HttpJson", GoldenFile)));
        answers.Select(a => a.Name).Should().Equal(expected.Select(a => a.Name));
        foreach (var (actual, golden) in answers.Zip(expected))
        {
            actual.Status.Should().Be(golden.Status, $"{golden.Name} ({golden.Request}) answered {actual.Body}");
            if (golden.Loose)
            {
                Code(actual.Body).Should().Be(Code(golden.Body), golden.Name);
                continue;
            }

            actual.ContentType.Should().Be(golden.ContentType, golden.Name);
            actual.Body.Should().Be(golden.Body, $"{golden.Name} ({golden.Request})");
        }
    }

    private static int? Code(string body)
    {
        try
        {
            return JsonDocument.Parse(body).RootElement.TryGetProperty("code", out var c) ? c.GetInt32() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Normalize(string text)
    {
        text = Uuid().Replace(text, "<uuid>");
        text = Uid32().Replace(text, "\"<uid>\"");
        text = Duration().Replace(text, "\"durationSeconds\":<n>");
        text = TempPath().Replace(text, "<tmp>/");
        text = Sha256().Replace(text, "\"sha256\":\"<sha256>\"");
        text = Timestamp().Replace(text, "\"<time>\"");
        return RandomId().Replace(text, "vm-<hex>").TrimEnd('\n');
    }

    private static string Render(IEnumerable<Answer> answers)
    {
        var b = new StringBuilder();
        foreach (var a in answers)
        {
            b.Append("### ").Append(a.Name).Append(a.Loose ? " loose" : "").Append('\n')
                .Append(a.Request).Append('\n')
                .Append(a.Status).Append(' ').Append(a.ContentType).Append('\n')
                .Append(a.Body).Append("\n\n");
        }

        return b.ToString();
    }

    private static List<Answer> Parse(string text)
    {
        var answers = new List<Answer>();
        foreach (var block in text.Split("### ", StringSplitOptions.RemoveEmptyEntries))
        {
            var lines = block.Split('\n');
            var head = lines[0].Split(' ');
            var status = lines[2].Split(' ', 2);
            var body = string.Join('\n', lines[3..]).TrimEnd('\n');
            answers.Add(new Answer(head[0], lines[1], int.Parse(status[0], System.Globalization.CultureInfo.InvariantCulture),
                status.Length > 1 ? status[1] : "", body, head.Length > 1 && head[1] == "loose"));
        }

        return answers;
    }

    private static string SourceDirectory([CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;

    private sealed record Answer(string Name, string Request, int Status, string ContentType, string Body, bool Loose);

    [GeneratedRegex("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")]
    private static partial Regex Uuid();

    [GeneratedRegex("\"\\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z\"")]
    private static partial Regex Timestamp();

    [GeneratedRegex("\"[0-9a-f]{32}\"")]
    private static partial Regex Uid32();

    [GeneratedRegex("\"durationSeconds\":[0-9.eE+-]+")]
    private static partial Regex Duration();

    [GeneratedRegex("/tmp/hypercore-[A-Za-z0-9-]+/")]
    private static partial Regex TempPath();

    [GeneratedRegex("\"sha256\":\"[0-9a-f]{64}\"")]
    private static partial Regex Sha256();

    [GeneratedRegex("vm-[0-9a-f]{8}")]
    private static partial Regex RandomId();
}
