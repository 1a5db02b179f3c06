using System.Net;
using System.Text;
using Grpc.Core;
using Grpc.Health.V1;
using Hypercore.Contracts.VmApi;
using Hypercore.Testing;
using Fl = Hypercore.Contracts.Flintlock;
using VistaraProto = Hypercore.Contracts.Vistara;

namespace Hypercore.EndToEnd.Tests.Hostile;

/// <summary>
/// Callers who should not get in, through the real vistarad (TLS, client certificates, tokens, identity grants from
/// its config file). Every case asserts the exact status, that no stored spec changed (read as the administrator on the
/// Unix socket) and that no hypervisor process was started.
/// </summary>
[NonParallelizable]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class AuthHostileTests
{
    private static readonly TimeSpan WatchWindow = TimeSpan.FromSeconds(3);

    private SecureNode _node = null!;
    private MicroVM _victim = null!;
    private List<string> _before = [];

    private static CreateMicroVMRequest CreateIn(string @namespace, string id = "intruder") => new()
    {
        Microvm = new MicroVMSpec { Id = id, Namespace = @namespace, Vcpu = 1, MemoryInMb = 64, Kernel = new Kernel { Image = "default" } },
    };

    [OneTimeSetUp]
    public async Task StartNode()
    {
        _node = await SecureNode.StartAsync();
        _victim = await _node.SeedAsync("team-b", "victim");
        await _node.SeedAsync("team-a", "mine");
    }

    [OneTimeTearDown]
    public async Task StopNode()
    {
        if (_node is not null)
        {
            await _node.DisposeAsync();
        }
    }

    [SetUp]
    public async Task TakeSnapshot() => _before = await _node.SnapshotAsync();

    [TearDown]
    public async Task NothingWasWrittenAndNoHypervisorStarted()
    {
        if (TestContext.CurrentContext.Result.Outcome.Status != NUnit.Framework.Interfaces.TestStatus.Passed)
        {
            return;
        }

        (await _node.SnapshotAsync()).Should().Equal(_before, "a refused call writes nothing");
        _node.HypervisorProcesses().Should().BeEmpty("no refused call may start a hypervisor");
    }

    [Test]
    public async Task Create_NoCredentials_ReturnsUnauthenticated()
    {
        var (code, detail) = await Rpc.StatusOfAsync(_node.Vms().CreateAsync(CreateIn("team-a")));

        code.Should().Be(StatusCode.Unauthenticated);
        detail.Should().Contain("no credentials");
    }

    [Test]
    public async Task List_NoCredentials_ReturnsUnauthenticated()
    {
        var (code, _) = await Rpc.StatusOfAsync(_node.Vms().ListAsync(new ListMicroVMsRequest()));

        code.Should().Be(StatusCode.Unauthenticated);
    }

    [Test]
    public async Task Create_WrongBearerToken_ReturnsUnauthenticated()
    {
        var (code, detail) = await Rpc.StatusOfAsync(_node.Vms().CreateAsync(CreateIn("team-a"), SecureNode.Bearer("not-a-token-0123456789abcdef")));

        code.Should().Be(StatusCode.Unauthenticated);
        detail.Should().Contain("not in the daemon's --token-file");
    }

    [Test]
    public async Task Create_WrongBasicToken_ReturnsUnauthenticated()
    {
        var (code, _) = await Rpc.StatusOfAsync(_node.Vms().CreateAsync(CreateIn("team-a"), SecureNode.Basic("not-a-token-0123456789abcdef")));

        code.Should().Be(StatusCode.Unauthenticated);
    }

    [Test]
    public async Task Bearer_WithTheBase64OfAToken_ReturnsUnauthenticated()
    {
        var base64 = Convert.ToBase64String(Encoding.UTF8.GetBytes(SecureNode.AdminToken));

        var (code, _) = await Rpc.StatusOfAsync(_node.Vms().CreateAsync(CreateIn("team-a"), SecureNode.Bearer(base64)));

        code.Should().Be(StatusCode.Unauthenticated, "basic carries base64(token), bearer the token itself: they are not interchangeable");
    }

    [Test]
    public async Task Basic_WithTheRawTokenInsteadOfBase64_ReturnsUnauthenticated()
    {
        var headers = new Metadata { { "authorization", "basic " + SecureNode.AdminToken } };

        var (code, _) = await Rpc.StatusOfAsync(_node.Vms().CreateAsync(CreateIn("team-a"), headers));

        code.Should().Be(StatusCode.Unauthenticated);
    }

    [TestCase("Digest abc")]
    [TestCase("Bearer")]
    [TestCase("token admin-token-0123456789abcdef")]
    public async Task UnknownOrEmptyScheme_ReturnsUnauthenticated(string header)
    {
        var (code, _) = await Rpc.StatusOfAsync(_node.Vms().CreateAsync(CreateIn("team-a"), new Metadata { { "authorization", header } }));

        code.Should().Be(StatusCode.Unauthenticated);
    }

    [TestCase("basic")]
    [TestCase("BASIC")]
    [TestCase("Basic")]
    public async Task FlintlockBasicForm_AnyCase_IsAccepted(string scheme)
    {
        var (code, detail) = await Rpc.StatusOfAsync(_node.Vms().ListAsync(new ListMicroVMsRequest(), SecureNode.Basic(SecureNode.AdminToken, scheme)));

        code.Should().Be(StatusCode.OK, detail);
    }

    [Test]
    public async Task ClientCertificateFromAnotherCa_ReturnsUnauthenticated()
    {
        var stranger = TestPki.Load(_node.OtherPki.Client("alice"));

        var (code, detail) = await Rpc.StatusOfAsync(_node.Vms(stranger).CreateAsync(CreateIn("team-a")));

        code.Should().Be(StatusCode.Unauthenticated);
        detail.Should().Contain("not issued by the daemon's --tls-client-ca");
    }

    [Test]
    public async Task ExpiredClientCertificate_ReturnsUnauthenticated()
    {
        var expired = TestPki.Load(_node.Pki.Client("alice", expired: true));

        var (code, detail) = await Rpc.StatusOfAsync(_node.Vms(expired).CreateAsync(CreateIn("team-a")));

        code.Should().Be(StatusCode.Unauthenticated);
        detail.Should().Contain("not valid now");
    }

    [Test]
    public async Task ClientCertificate_OfAnIdentity_CanUseItsNamespace_ButNotAnother()
    {
        var alice = TestPki.Load(_node.Pki.Client("alice"));
        var vms = _node.Vms(alice);

        var own = await Rpc.StatusOfAsync(vms.GetAsync(new GetMicroVMRequest { Id = "mine", Namespace = "team-a" }));
        var other = await Rpc.StatusOfAsync(vms.CreateAsync(CreateIn("team-b")));

        own.Code.Should().Be(StatusCode.OK, own.Detail);
        other.Code.Should().Be(StatusCode.PermissionDenied);
        other.Detail.Should().Contain("identity \"alice\" may not use namespace \"team-b\"");
    }

    [Test]
    public async Task Create_OutsideOwnNamespace_ReturnsPermissionDenied()
    {
        var (code, detail) = await Rpc.StatusOfAsync(_node.Vms().CreateAsync(CreateIn("team-b"), SecureNode.Bearer(SecureNode.TeamAToken)));

        code.Should().Be(StatusCode.PermissionDenied);
        detail.Should().Contain("team-b");
    }

    [Test]
    public async Task Get_ByIdInAnotherNamespace_ReturnsPermissionDenied()
    {
        var (code, _) = await Rpc.StatusOfAsync(_node.Vms().GetAsync(
            new GetMicroVMRequest { Id = "victim", Namespace = "team-b" }, SecureNode.Bearer(SecureNode.TeamAToken)));

        code.Should().Be(StatusCode.PermissionDenied);
    }

    [Test]
    public async Task Get_ByUidOfAnotherNamespacesVm_ReturnsNotFound()
    {
        var (code, _) = await Rpc.StatusOfAsync(_node.Vms().GetAsync(
            new GetMicroVMRequest { Uid = _victim.Spec.Uid }, SecureNode.Bearer(SecureNode.TeamAToken)));

        code.Should().Be(StatusCode.NotFound, "a VM outside the caller's namespaces is not there for it (its existence does not leak)");
    }

    [Test]
    public async Task Get_ByIdAloneOfAnotherNamespacesVm_ReturnsNotFound()
    {
        var (code, _) = await Rpc.StatusOfAsync(_node.Vms().GetAsync(new GetMicroVMRequest { Id = "victim" }, SecureNode.Bearer(SecureNode.TeamAToken)));

        code.Should().Be(StatusCode.NotFound);
    }

    [Test]
    public async Task List_AnotherNamespace_ReturnsPermissionDenied()
    {
        var (code, _) = await Rpc.StatusOfAsync(_node.Vms().ListAsync(new ListMicroVMsRequest { Namespace = "team-b" }, SecureNode.Bearer(SecureNode.TeamAToken)));

        code.Should().Be(StatusCode.PermissionDenied);
    }

    [Test]
    public async Task List_AllNamespaces_ShowsOnlyOwnNamespace()
    {
        var reply = await _node.Vms().ListAsync(new ListMicroVMsRequest(), SecureNode.Bearer(SecureNode.TeamAToken));

        reply.Microvm.Select(v => $"{v.Spec.Namespace}/{v.Spec.Id}").Should().Equal("team-a/mine");
    }

    [Test]
    public async Task Delete_ByUidOfAnotherNamespacesVm_ReturnsNotFound()
    {
        var (code, _) = await Rpc.StatusOfAsync(_node.Vms().DeleteAsync(new DeleteMicroVMRequest { Uid = _victim.Spec.Uid }, SecureNode.Bearer(SecureNode.TeamAToken)));

        code.Should().Be(StatusCode.NotFound);
    }

    [Test]
    public async Task Delete_InAnotherNamespace_ReturnsPermissionDenied()
    {
        var (code, _) = await Rpc.StatusOfAsync(_node.Vms().DeleteAsync(
            new DeleteMicroVMRequest { Id = "victim", Namespace = "team-b" }, SecureNode.Bearer(SecureNode.TeamAToken)));

        code.Should().Be(StatusCode.PermissionDenied);
    }

    [Test]
    public async Task Watch_AnotherNamespace_ReturnsPermissionDenied()
    {
        var (messages, code) = await Rpc.ReadAsync(
            _node.Vms().Watch(new WatchMicroVMsRequest { Namespace = "team-b" }, SecureNode.Bearer(SecureNode.TeamAToken)), WatchWindow);

        code.Should().Be(StatusCode.PermissionDenied);
        messages.Should().BeEmpty();
    }

    [Test]
    public async Task Watch_AllNamespaces_SendsOnlyOwnNamespace()
    {
        var (messages, code) = await Rpc.ReadAsync(_node.Vms().Watch(new WatchMicroVMsRequest(), SecureNode.Bearer(SecureNode.TeamAToken)), WatchWindow);

        code.Should().Be(StatusCode.OK);
        messages.Should().NotBeEmpty().And.OnlyContain(m => m.Microvm.Spec.Namespace == "team-a");
    }

    [Test]
    public async Task ReadOnlyIdentity_Create_ReturnsPermissionDenied()
    {
        var (code, detail) = await Rpc.StatusOfAsync(_node.Vms().CreateAsync(CreateIn("team-a"), SecureNode.Bearer(SecureNode.ReaderToken)));

        code.Should().Be(StatusCode.PermissionDenied);
        detail.Should().Contain("may only read");
    }

    [Test]
    public async Task ReadOnlyIdentity_StartAndDelete_ReturnPermissionDenied()
    {
        var start = await Rpc.StatusOfAsync(_node.Vms().StartAsync(new LifecycleRequest { Id = "mine", Namespace = "team-a" }, SecureNode.Bearer(SecureNode.ReaderToken)));
        var delete = await Rpc.StatusOfAsync(_node.Vms().DeleteAsync(new DeleteMicroVMRequest { Id = "mine", Namespace = "team-a" }, SecureNode.Bearer(SecureNode.ReaderToken)));

        start.Code.Should().Be(StatusCode.PermissionDenied);
        delete.Code.Should().Be(StatusCode.PermissionDenied);
    }

    [Test]
    public async Task ReadOnlyIdentity_CanRead()
    {
        var (code, detail) = await Rpc.StatusOfAsync(_node.Vms().GetAsync(new GetMicroVMRequest { Id = "mine", Namespace = "team-a" }, SecureNode.Bearer(SecureNode.ReaderToken)));

        code.Should().Be(StatusCode.OK, detail);
    }

    [Test]
    public async Task IdentityNotListed_ReturnsPermissionDenied()
    {
        var (code, detail) = await Rpc.StatusOfAsync(_node.Vms().ListAsync(new ListMicroVMsRequest(), SecureNode.Bearer(SecureNode.GhostToken)));

        code.Should().Be(StatusCode.PermissionDenied);
        detail.Should().Contain("ghost");
    }

    [Test]
    public async Task VistaraService_NoCredentials_ReturnsUnauthenticated()
    {
        var vistara = new VistaraProto.Vistara.VistaraClient(_node.Channel());

        var (code, _) = await Rpc.StatusOfAsync(vistara.CreateMicroVMAsync(new VistaraProto.CreateMicroVMRequest { Name = "seed1" }));

        code.Should().Be(StatusCode.Unauthenticated, "authentication covers every service, not only VMService");
    }

    [Test]
    public async Task FlintlockService_NoCredentials_ReturnsUnauthenticated()
    {
        var flintlock = new Fl.MicroVM.MicroVMClient(_node.Channel());

        var (code, _) = await Rpc.StatusOfAsync(flintlock.CreateMicroVMAsync(new Fl.CreateMicroVMRequest { Microvm = CreateIn("team-a").Microvm }));

        code.Should().Be(StatusCode.Unauthenticated, "flintlock's service is behind the same authentication");
    }

    [Test]
    public async Task FlintlockService_WrongBasicToken_ReturnsUnauthenticated()
    {
        var flintlock = new Fl.MicroVM.MicroVMClient(_node.Channel());

        var (code, _) = await Rpc.StatusOfAsync(flintlock.GetMicroVMAsync(
            new Fl.GetMicroVMRequest { Uid = _victim.Spec.Uid }, SecureNode.Basic("not-a-token-0123456789abcdef")));

        code.Should().Be(StatusCode.Unauthenticated);
    }

    [Test]
    public async Task FlintlockService_BasicToken_AsFlintlockClientsSendIt_IsAccepted()
    {
        var flintlock = new Fl.MicroVM.MicroVMClient(_node.Channel());

        var reply = await flintlock.GetMicroVMAsync(new Fl.GetMicroVMRequest { Uid = _victim.Spec.Uid }, SecureNode.Basic(SecureNode.AdminToken, "basic"));

        reply.Microvm.Spec.Id.Should().Be("victim");
    }

    [Test]
    public async Task FlintlockService_GetByUidOfAnotherNamespacesVm_ReturnsNotFound()
    {
        var flintlock = new Fl.MicroVM.MicroVMClient(_node.Channel());

        var (code, detail) = await Rpc.StatusOfAsync(flintlock.GetMicroVMAsync(
            new Fl.GetMicroVMRequest { Uid = _victim.Spec.Uid }, SecureNode.Bearer(SecureNode.TeamAToken)));

        code.Should().Be(StatusCode.NotFound, "a VM of another namespace does not exist for this identity");
        detail.Should().Contain("not found");
    }

    [Test]
    public async Task VistaraService_ListOfAnotherIdentity_ShowsOnlyItsNamespaces()
    {
        var vistara = new VistaraProto.Vistara.VistaraClient(_node.Channel());

        var reply = await vistara.ListMicroVMAsync(new VistaraProto.ListMicroVMRequest(), SecureNode.Bearer(SecureNode.TeamAToken));

        reply.Name.Should().Equal("mine");
    }

    [Test]
    public async Task Reflection_NoCredentials_ReturnsUnauthenticated()
    {
        var reflection = new Grpc.Reflection.V1Alpha.ServerReflection.ServerReflectionClient(_node.Channel());
        using var call = reflection.ServerReflectionInfo();

        // Refused before the handler reads anything: the response ends with the status. Writing a request first races
        // with that ending (a write after the call ended fails with Cancelled on the client), so only the response is read.
        var (code, _) = await Rpc.StatusOfAsync(async () => await call.ResponseStream.MoveNext(CancellationToken.None));

        code.Should().Be(StatusCode.Unauthenticated);
    }

    [Test]
    public async Task Health_NoCredentials_IsServing()
    {
        var health = new Health.HealthClient(_node.Channel());

        var reply = await health.CheckAsync(new HealthCheckRequest());

        reply.Status.Should().Be(HealthCheckResponse.Types.ServingStatus.Serving);
    }

    [Test]
    public async Task Http_NoCredentials_Returns401()
    {
        using var response = await _node.Https().PostAsync("/v1/microvms", HttpJson.Json("""{"microvm":{"id":"intruder","namespace":"team-a","kernel":{"image":"default"}}}"""));

        response.StatusCode.Should().Be(HttpStatusCode.Unauthorized);
        (await response.Content.ReadAsStringAsync()).Should().Contain("\"code\":16");
    }

    [Test]
    public async Task Http_BadHostHeader_Returns403()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/microvms")
        {
            Content = HttpJson.Json("""{"microvm":{"id":"intruder","namespace":"team-a","kernel":{"image":"default"}}}"""),
        };
        request.Headers.Host = "attacker.example";
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", SecureNode.AdminToken);

        using var response = await _node.Https().SendAsync(request);

        response.StatusCode.Should().Be(HttpStatusCode.Forbidden);
        (await response.Content.ReadAsStringAsync()).Should().Contain("--allowed-hosts");
    }

    [Test]
    public async Task Http_OversizedBody_Returns413()
    {
        var huge = new string('x', 2 * 1024 * 1024);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/microvms")
        {
            Content = HttpJson.Json("{\"microvm\":{\"id\":\"intruder\",\"namespace\":\"team-a\",\"kernel\":{\"image\":\"default\"},\"labels\":{\"x\":\"" + huge + "\"}}}"),
        };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", SecureNode.AdminToken);

        // As curl does for a large body: the daemon refuses on Content-Length before reading, and Kestrel then closes
        // the connection, so a client already sending the 2 MB got "broken pipe" instead of the 413 (once in CI).
        request.Headers.ExpectContinue = true;

        using var response = await _node.Https().SendAsync(request);

        response.StatusCode.Should().Be(HttpStatusCode.RequestEntityTooLarge);
    }

    [Test]
    public async Task Grpc_OversizedMessage_ReturnsResourceExhausted()
    {
        var request = CreateIn("team-a");
        request.Microvm.Labels["x"] = new string('x', 2 * 1024 * 1024);

        var (code, _) = await Rpc.StatusOfAsync(_node.Vms().CreateAsync(request, SecureNode.Bearer(SecureNode.AdminToken)));

        code.Should().Be(StatusCode.ResourceExhausted);
    }

    [TestCase("application/x-www-form-urlencoded")]
    [TestCase("text/plain")]
    [TestCase("multipart/form-data; boundary=x")]
    public async Task Http_NonJsonBody_Returns415(string mediaType)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/microvms")
        {
            Content = new StringContent("""{"microvm":{"id":"intruder","namespace":"team-a","kernel":{"image":"default"}}}"""),
        };
        request.Content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(mediaType);
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", SecureNode.AdminToken);

        using var response = await _node.Https().SendAsync(request);

        response.StatusCode.Should().Be(HttpStatusCode.UnsupportedMediaType);
    }

    [Test]
    public async Task Http_ClientCertificateOfAnotherCa_Returns401()
    {
        var stranger = TestPki.Load(_node.OtherPki.Client("admin"));

        using var response = await _node.Https(stranger).GetAsync("/v1/microvms");

        response.StatusCode.Should().Be(HttpStatusCode.Unauthorized);
    }

    [Test]
    public async Task Http_PermissionDenied_Returns403()
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, "/v1/microvms/victim?namespace=team-b");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", SecureNode.TeamAToken);

        using var response = await _node.Https().SendAsync(request);

        response.StatusCode.Should().Be(HttpStatusCode.Forbidden);
    }
}
