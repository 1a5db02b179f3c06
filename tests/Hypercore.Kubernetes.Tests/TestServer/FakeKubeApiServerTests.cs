using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Hypercore.Kubernetes.Tests.Support;
using Hypercore.Kubernetes.TestServer;

namespace Hypercore.Kubernetes.Tests.TestServer;

/// <summary>The fake API server's own semantics, over raw HTTP, so that what the store and kubectl tests rely on is pinned down.</summary>
public sealed class FakeKubeApiServerTests
{
    private const string Base = "apis/hypercore.vistara.dev/v1alpha1/namespaces/default/microvms";
    private FakeKubeApiServer _server = null!;
    private HttpClient _http = null!;

    [SetUp]
    public async Task SetUp()
    {
        var options = new FakeKubeApiServerOptions { BookmarkInterval = TimeSpan.FromMilliseconds(100) };
        options.CrdFiles.Add(Repo.CrdFile);
        _server = await FakeKubeApiServer.StartAsync(options);
        _http = new HttpClient { BaseAddress = _server.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    [TearDown]
    public async Task TearDown()
    {
        _http.Dispose();
        var faults = _server.Faults;
        await _server.DisposeAsync();
        faults.Should().BeEmpty();
    }

    [Test]
    public async Task Discovery_ListsTheGroupResourceShortNameAndStatusSubresource()
    {
        var groups = await GetJson("apis");
        var resources = await GetJson("apis/hypercore.vistara.dev/v1alpha1");

        groups["groups"]!.AsArray().Select(g => (string?)g!["name"]).Should().Contain("hypercore.vistara.dev");
        var mvm = resources["resources"]!.AsArray().Single(r => (string?)r!["name"] == "microvms")!;
        ((string?)mvm["kind"]).Should().Be("MicroVM");
        mvm["shortNames"]!.AsArray().Select(s => (string?)s).Should().Equal("mvm");
        resources["resources"]!.AsArray().Should().Contain(r => (string?)r!["name"] == "microvms/status");
        ((string?)(await GetJson("api"))["kind"]).Should().Be("APIVersions");
    }

    [Test]
    public async Task Create_SetsUidCreationTimestampGenerationAndResourceVersion_AndDropsStatus()
    {
        var (code, created) = await Send(HttpMethod.Post, Base, MicroVm("a", status: new JsonObject { ["phase"] = "Running" }));

        code.Should().Be(HttpStatusCode.Created);
        var meta = created["metadata"]!;
        ((string?)meta["uid"]).Should().NotBeNullOrEmpty();
        ((string?)meta["creationTimestamp"]).Should().NotBeNullOrEmpty();
        ((long)meta["generation"]!).Should().Be(1);
        long.Parse((string)meta["resourceVersion"]!).Should().BeGreaterThan(0);
        created["status"].Should().BeNull("status is ignored on create when the status subresource is on");
        ((int)created["spec"]!["memoryInMb"]!).Should().Be(128, "schema defaults apply");

        var (again, status) = await Send(HttpMethod.Post, Base, MicroVm("a"));
        again.Should().Be(HttpStatusCode.Conflict);
        ((string?)status["reason"]).Should().Be("AlreadyExists");
    }

    [Test]
    public async Task ResourceVersion_IsGlobalAndIncreasing_AndAStaleOneIs409()
    {
        var (_, a) = await Send(HttpMethod.Post, Base, MicroVm("a"));
        var (_, b) = await Send(HttpMethod.Post, Base, MicroVm("b"));
        Rv(b).Should().BeGreaterThan(Rv(a));

        var update = (JsonObject)a.DeepClone();
        update["spec"]!["vcpu"] = 2;
        var (ok, updated) = await Send(HttpMethod.Put, $"{Base}/a", update);
        ok.Should().Be(HttpStatusCode.OK);
        Rv(updated).Should().BeGreaterThan(Rv(b));

        var (stale, status) = await Send(HttpMethod.Put, $"{Base}/a", update); // still carries a's old resourceVersion
        stale.Should().Be(HttpStatusCode.Conflict);
        ((string?)status["reason"]).Should().Be("Conflict");
        ((string?)status["message"]).Should().Contain("the object has been modified");
    }

    [Test]
    public async Task Generation_IsBumpedBySpecChangesOnly()
    {
        var (_, a) = await Send(HttpMethod.Post, Base, MicroVm("a"));

        var labelled = (JsonObject)a.DeepClone();
        labelled["metadata"]!["labels"] = new JsonObject { ["x"] = "y" };
        var (_, afterLabel) = await Send(HttpMethod.Put, $"{Base}/a", labelled);
        var withStatus = (JsonObject)afterLabel.DeepClone();
        withStatus["status"] = new JsonObject { ["phase"] = "Running" };
        var (_, afterStatus) = await Send(HttpMethod.Put, $"{Base}/a/status", withStatus);
        var respecced = (JsonObject)afterStatus.DeepClone();
        respecced["spec"]!["vcpu"] = 4;
        var (_, afterSpec) = await Send(HttpMethod.Put, $"{Base}/a", respecced);

        Generation(afterLabel).Should().Be(1, "metadata changes do not bump the generation");
        Generation(afterStatus).Should().Be(1, "status changes do not bump the generation");
        Generation(afterSpec).Should().Be(2);
    }

    [Test]
    public async Task StatusSubresource_IgnoresSpec_AndMainResourceIgnoresStatus()
    {
        var (_, a) = await Send(HttpMethod.Post, Base, MicroVm("a"));

        var both = (JsonObject)a.DeepClone();
        both["spec"]!["vcpu"] = 8;
        both["status"] = new JsonObject { ["phase"] = "Running" };
        var (_, viaStatus) = await Send(HttpMethod.Put, $"{Base}/a/status", both);
        ((int)viaStatus["spec"]!["vcpu"]!).Should().Be(1);
        ((string?)viaStatus["status"]!["phase"]).Should().Be("Running");

        var both2 = (JsonObject)viaStatus.DeepClone();
        both2["spec"]!["vcpu"] = 8;
        both2["status"]!["phase"] = "Failed";
        var (_, viaMain) = await Send(HttpMethod.Put, $"{Base}/a", both2);
        ((int)viaMain["spec"]!["vcpu"]!).Should().Be(8);
        ((string?)viaMain["status"]!["phase"]).Should().Be("Running");

        var badStatus = (JsonObject)viaMain.DeepClone();
        badStatus["status"]!["phase"] = "Sleeping";
        var (invalid, _) = await Send(HttpMethod.Put, $"{Base}/a/status", badStatus);
        invalid.Should().Be(HttpStatusCode.UnprocessableEntity, "status is validated against the CRD schema too");
    }

    [Test]
    public async Task Delete_WithFinalizer_HoldsTheObjectWithDeletionTimestamp_UntilTheFinalizerIsRemoved()
    {
        var withFinalizer = MicroVm("a");
        withFinalizer["metadata"]!["finalizers"] = new JsonArray("example.com/f");
        await Send(HttpMethod.Post, Base, withFinalizer);

        var (code, held) = await Send(HttpMethod.Delete, $"{Base}/a", null);
        code.Should().Be(HttpStatusCode.OK);
        ((string?)held["metadata"]!["deletionTimestamp"]).Should().NotBeNullOrEmpty();
        (await Send(HttpMethod.Get, $"{Base}/a", null)).Code.Should().Be(HttpStatusCode.OK);

        var adding = (JsonObject)held.DeepClone();
        adding["metadata"]!["finalizers"] = new JsonArray("example.com/f", "example.com/g");
        (await Send(HttpMethod.Put, $"{Base}/a", adding)).Code.Should().Be(HttpStatusCode.UnprocessableEntity, "no new finalizers while deleting");

        var removing = (JsonObject)held.DeepClone();
        removing["metadata"]!["finalizers"] = new JsonArray();
        (await Send(HttpMethod.Put, $"{Base}/a", removing)).Code.Should().Be(HttpStatusCode.OK);
        (await Send(HttpMethod.Get, $"{Base}/a", null)).Code.Should().Be(HttpStatusCode.NotFound);
    }

    [Test]
    public async Task Watch_StreamsAddedModifiedDeletedAndBookmarks_FromTheGivenVersion()
    {
        var (_, list) = await Send(HttpMethod.Get, Base, null);
        var from = (string)list["metadata"]!["resourceVersion"]!;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var response = await _http.GetAsync($"{Base}?watch=true&allowWatchBookmarks=true&resourceVersion={from}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));

        var (_, a) = await Send(HttpMethod.Post, Base, MicroVm("a"));
        var changed = (JsonObject)a.DeepClone();
        changed["spec"]!["vcpu"] = 2;
        await Send(HttpMethod.Put, $"{Base}/a", changed);
        await Send(HttpMethod.Delete, $"{Base}/a", null);

        var seen = new List<(string Type, long Rv)>();
        while (seen.FindIndex(s => s.Type == "DELETED") is var deleted && (deleted < 0 || !seen.Skip(deleted).Any(s => s.Type == "BOOKMARK")))
        {
            var line = await reader.ReadLineAsync(cts.Token) ?? throw new AssertionException("watch ended");
            var ev = JsonNode.Parse(line)!;
            seen.Add(((string)ev["type"]!, Rv(ev["object"]!)));
        }

        seen.Where(s => s.Type != "BOOKMARK").Select(s => s.Type).Should().Equal("ADDED", "MODIFIED", "DELETED");
        seen.Where(s => s.Type != "BOOKMARK").Select(s => s.Rv).Should().BeInAscendingOrder();
        seen.Last().Type.Should().Be("BOOKMARK");
        seen.Last().Rv.Should().Be(seen.Single(s => s.Type == "DELETED").Rv, "a bookmark carries the latest resourceVersion");
    }

    [Test]
    public async Task WatchWithLabelSelector_ObjectRelabelledInIsAdded_RelabelledOutIsDeleted_OthersNeverSent()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var selector = Uri.EscapeDataString("hypercore.vistara.dev/node=n1");
        using var response = await _http.GetAsync($"{Base}?watch=true&labelSelector={selector}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));

        var (_, other) = await Send(HttpMethod.Post, Base, Labelled(MicroVm("other"), "n2"));
        var (_, mover) = await Send(HttpMethod.Post, Base, Labelled(MicroVm("mover"), "n2"));
        var (inCode, inBody) = await Send(HttpMethod.Put, $"{Base}/mover", Labelled(mover, "n1"));          // moves in
        inCode.Should().Be(HttpStatusCode.OK, inBody.ToJsonString());
        var (_, moved) = await Send(HttpMethod.Get, $"{Base}/mover", null);
        var changed = (JsonObject)moved.DeepClone();
        changed["spec"]!["vcpu"] = 2;
        var (_, changedBack) = await Send(HttpMethod.Put, $"{Base}/mover", changed); // changes while in
        await Send(HttpMethod.Put, $"{Base}/mover", Labelled(changedBack, "n3"));    // moves out
        await Send(HttpMethod.Put, $"{Base}/other", Labelled(other, "n4"));          // never in

        var seen = new List<(string Type, string Name, string? Node)>();
        while (seen.Count < 3)
        {
            var line = await reader.ReadLineAsync(cts.Token) ?? throw new AssertionException("watch ended");
            var ev = JsonNode.Parse(line)!;
            seen.Add(((string)ev["type"]!, (string)ev["object"]!["metadata"]!["name"]!, (string?)ev["object"]!["metadata"]!["labels"]?["hypercore.vistara.dev/node"]));
        }

        seen.Should().Equal(("ADDED", "mover", "n1"), ("MODIFIED", "mover", "n1"), ("DELETED", "mover", "n3"));
        _server.DeliveredWatchEvents.Select(e => e.Name).Should().NotContain("other");
        _server.Requests.Should().Contain(r => r.Verb == "watch" && r.LabelSelector == "hypercore.vistara.dev/node=n1" && r.Token == "");
    }

    private static JsonObject Labelled(JsonObject o, string node)
    {
        var copy = (JsonObject)o.DeepClone();
        var meta = copy["metadata"]!.AsObject();
        meta["labels"] = new JsonObject { ["hypercore.vistara.dev/node"] = node };
        return copy;
    }

    [Test]
    public async Task Watch_FromACompactedVersion_AnswersErrorEvent410()
    {
        var (_, a) = await Send(HttpMethod.Post, Base, MicroVm("a"));
        await Send(HttpMethod.Post, Base, MicroVm("b"));
        _server.CompactHistory();

        using var response = await _http.GetAsync($"{Base}?watch=true&resourceVersion={Rv(a)}", HttpCompletionOption.ResponseHeadersRead);
        var body = await response.Content.ReadAsStringAsync();

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        var ev = JsonNode.Parse(body.Trim())!;
        ((string?)ev["type"]).Should().Be("ERROR");
        ((int)ev["object"]!["code"]!).Should().Be(410);
        ((string?)ev["object"]!["reason"]).Should().Be("Expired");
    }

    [Test]
    public async Task Pattern_EndsAtTheEndOfTheText_AsKubeApiServersGoRegexp()
    {
        // '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' on spec.restoreFrom: Go's '$' matches only at the end of the text, so a
        // value ending in a newline is refused (.NET's '$' would also match before that final newline).
        var withNewline = MicroVm("a");
        withNewline["spec"]!["restoreFrom"] = "snap1\n";
        var plain = MicroVm("b");
        plain["spec"]!["restoreFrom"] = "snap1";

        var (refused, status) = await Send(HttpMethod.Post, Base, withNewline);
        var (created, _) = await Send(HttpMethod.Post, Base, plain);

        refused.Should().Be(HttpStatusCode.UnprocessableEntity);
        ((string?)status["message"]).Should().Contain("spec.restoreFrom");
        created.Should().Be(HttpStatusCode.Created);
    }

    [Test]
    public async Task Name_EndingInANewline_IsRefused()
    {
        var (refused, status) = await Send(HttpMethod.Post, Base, MicroVm("a\n"));

        refused.Should().Be(HttpStatusCode.UnprocessableEntity);
        ((string?)status["message"]).Should().Contain("RFC 1123 subdomain");
    }

    [TestCase(@"^a$", @"^a\z")]
    [TestCase(@"^a\$$", @"^a\$\z")]
    [TestCase(@"^[$a]+$", @"^[$a]+\z")]
    [TestCase(@"^[]$]$", @"^[]$]\z")]
    [TestCase(@"^[^]$]x$", @"^[^]$]x\z")]
    [TestCase(@"^(a$|b)$", @"^(a\z|b)\z")]
    public void GoPattern_AnchorsEveryDollarOutsideAClassAtTheEndOfTheText(string pattern, string expected) =>
        SchemaValidator.GoPattern(pattern).Should().Be(expected);

    [Test]
    public async Task Table_RendersPrinterColumns()
    {
        var withStatus = MicroVm("a");
        await Send(HttpMethod.Post, Base, withStatus);
        var (_, a) = await Send(HttpMethod.Get, $"{Base}/a", null);
        a["status"] = new JsonObject
        {
            ["phase"] = "Paused",
            ["node"] = "n1",
            ["conditions"] = new JsonArray(new JsonObject { ["type"] = "Ready", ["status"] = "False", ["lastTransitionTime"] = "2026-01-01T00:00:00Z" }),
        };
        await Send(HttpMethod.Put, $"{Base}/a/status", a);

        using var request = new HttpRequestMessage(HttpMethod.Get, Base);
        request.Headers.Accept.ParseAdd("application/json;as=Table;v=v1;g=meta.k8s.io");
        using var response = await _http.SendAsync(request);
        var table = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

        ((string?)table["kind"]).Should().Be("Table");
        table["columnDefinitions"]!.AsArray().Select(c => (string?)c!["name"]).Should().Equal("Name", "Phase", "Ready", "Node", "Provider", "vCPU", "Memory", "Age", "GuestReady");
        var cells = table["rows"]![0]!["cells"]!.AsArray();
        cells.Take(4).Select(c => c?.ToString()).Should().Equal("a", "Paused", "False", "n1");
        ((int)cells[5]!).Should().Be(1);
    }

    private static JsonObject MicroVm(string name, JsonObject? status = null)
    {
        var o = new JsonObject
        {
            ["apiVersion"] = "hypercore.vistara.dev/v1alpha1",
            ["kind"] = "MicroVM",
            ["metadata"] = new JsonObject { ["name"] = name },
            ["spec"] = new JsonObject { ["kernel"] = new JsonObject { ["image"] = "/k" } },
        };
        if (status is not null)
        {
            o["status"] = status;
        }

        return o;
    }

    private static long Rv(JsonNode obj) => long.Parse((string)obj["metadata"]!["resourceVersion"]!);

    private static long Generation(JsonNode obj) => (long)obj["metadata"]!["generation"]!;

    private async Task<JsonObject> GetJson(string path) => (await Send(HttpMethod.Get, path, null)).Body;

    private async Task<(HttpStatusCode Code, JsonObject Body)> Send(HttpMethod method, string path, JsonObject? body)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, new MediaTypeHeaderValue("application/json"));
        }

        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonNode.Parse(text)!.AsObject());
    }
}
