using System.Net.Http.Json;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;
using Hypercore.Client;
using Hypercore.Contracts.VmApi;
using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests.Hostile;

/// <summary>
/// A real vistarad with TLS on both endpoints, client certificates from <see cref="Pki"/>, a token file and
/// per-identity grants (config.toml), plus the clients a test needs: raw gRPC channels that trust the test CA (with or
/// without a client certificate), HttpClients likewise, and the administrator's client on the node's Unix socket.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed class SecureNode : IAsyncDisposable
{
    public const string AdminToken = "admin-token-0123456789abcdef";
    public const string TeamAToken = "team-a-token-0123456789abcdef";
    public const string ReaderToken = "reader-token-0123456789abcdef";
    public const string GhostToken = "ghost-token-0123456789abcdef";

    private readonly List<IDisposable> _disposables = [];

    private SecureNode(Node node, TestPki pki, TestPki other)
    {
        Node = node;
        Pki = pki;
        OtherPki = other;
    }

    public Node Node { get; }

    /// <summary>The CA the daemon trusts for clients (and that issued its server certificate).</summary>
    public TestPki Pki { get; }

    /// <summary>A CA the daemon knows nothing about.</summary>
    public TestPki OtherPki { get; }

    public string Socket => Path.Combine(Node.StateDir, "vistarad.sock");

    public string TokenFile => Path.Combine(Node.Root, "tokens");

    public Uri HttpUrl => Node.Http.BaseAddress!;

    public static async Task<SecureNode> StartAsync()
    {
        TestPki? pki = null, other = null;
        var node = await Node.StartAsync(n =>
        {
            pki = TestPki.Create(Path.Combine(n.Root, "pki"));
            other = TestPki.Create(Path.Combine(n.Root, "other-pki"), "other");
            var (cert, key) = pki.Server();
            var tokens = Path.Combine(n.Root, "tokens");
            File.WriteAllText(tokens, $"""
                # token identity
                {AdminToken} admin
                {TeamAToken} team-a
                {ReaderToken} reader
                {GhostToken} ghost
                """);
            File.SetUnixFileMode(tokens, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            var config = Path.Combine(n.Root, "config.toml");
            File.WriteAllText(config, """
                [[identities]]
                name = "admin"
                namespaces = ["*"]
                write = true

                [[identities]]
                name = "team-a"
                namespaces = ["team-a"]
                write = true

                [[identities]]
                name = "alice"
                namespaces = ["team-a"]
                write = true

                [[identities]]
                name = "reader"
                namespaces = ["team-a"]
                write = false
                """);
            return ["--config", config, "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", pki.CaPath, "--token-file", tokens];
        });
        return new SecureNode(node, pki!, other!);
    }

    /// <summary>The administrator: a peer on the Unix socket.</summary>
    public HypercoreClient Admin() => Track(HypercoreClient.Connect("unix://" + Socket));

    /// <summary>A gRPC channel over TLS that trusts the test CA; with a client certificate when given.</summary>
    public GrpcChannel Channel(X509Certificate2? clientCertificate = null)
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) => Pki.Trusts(certificate);
        if (clientCertificate is not null)
        {
            handler.SslOptions.ClientCertificates = [clientCertificate];
        }

        return Track(GrpcChannel.ForAddress(Node.GrpcUrl, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true }));
    }

    public VMService.VMServiceClient Vms(X509Certificate2? clientCertificate = null) => new(Channel(clientCertificate));

    /// <summary>A plain HTTPS client for the HTTP/JSON endpoint that trusts the test CA.</summary>
    public HttpClient Https(X509Certificate2? clientCertificate = null)
    {
        var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, certificate, _, _) => Pki.Trusts(certificate),
        };
        if (clientCertificate is not null)
        {
            handler.ClientCertificateOptions = ClientCertificateOption.Manual;
            handler.ClientCertificates.Add(clientCertificate);
        }

        return Track(new HttpClient(handler) { BaseAddress = HttpUrl, Timeout = TimeSpan.FromSeconds(30) });
    }

    public static Metadata Bearer(string token) => new() { { "authorization", "Bearer " + token } };

    public static Metadata Basic(string token, string scheme = "basic") =>
        new() { { "authorization", scheme + " " + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(token)) } };

    /// <summary>Creates a VM as the administrator with desired state Stopped: a record to attack, and no hypervisor.</summary>
    public async Task<MicroVM> SeedAsync(string @namespace, string id)
    {
        var reply = await Admin().Service.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec { Id = id, Namespace = @namespace, Vcpu = 1, MemoryInMb = 64, Kernel = new Kernel { Image = "default" }, State = "Stopped" },
        });
        return reply.Microvm;
    }

    /// <summary>Every stored spec (the status changes on its own; a spec changes only when someone writes).</summary>
    public async Task<List<string>> SnapshotAsync()
    {
        var all = await Admin().Service.ListAsync(new ListMicroVMsRequest());
        return all.Microvm.Select(v => v.Spec.ToString()).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>Processes other than the daemon whose command line names this node's directory: hypervisors.</summary>
    public IReadOnlyList<int> HypervisorProcesses() => ProcFs.FindByCommandLine(Node.Root).Where(p => p != Node.Daemon.Pid).ToList();

    private T Track<T>(T disposable)
        where T : IDisposable
    {
        _disposables.Add(disposable);
        return disposable;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var d in _disposables)
        {
            d.Dispose();
        }

        await Node.DisposeAsync();
    }
}

/// <summary>The status code of a gRPC call: OK when it succeeds.</summary>
internal static class Rpc
{
    public static async Task<(StatusCode Code, string Detail)> StatusOfAsync(Func<Task> call)
    {
        try
        {
            await call();
            return (StatusCode.OK, "");
        }
        catch (RpcException ex)
        {
            return (ex.StatusCode, ex.Status.Detail);
        }
    }

    public static Task<(StatusCode Code, string Detail)> StatusOfAsync<T>(AsyncUnaryCall<T> call) => StatusOfAsync(async () => await call);

    /// <summary>Reads a server stream to its end, or for at most <paramref name="window"/>; returns what arrived and the status.</summary>
    public static async Task<(List<T> Messages, StatusCode Code)> ReadAsync<T>(AsyncServerStreamingCall<T> call, TimeSpan window)
    {
        var messages = new List<T>();
        using var cts = new CancellationTokenSource(window);
        try
        {
            while (await call.ResponseStream.MoveNext(cts.Token))
            {
                messages.Add(call.ResponseStream.Current);
            }

            return (messages, StatusCode.OK);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled && cts.IsCancellationRequested)
        {
            return (messages, StatusCode.OK);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            return (messages, StatusCode.OK);
        }
        catch (RpcException ex)
        {
            return (messages, ex.StatusCode);
        }
        finally
        {
            call.Dispose();
        }
    }
}

internal static class HttpJson
{
    public static StringContent Json(string json) => new(json, System.Text.Encoding.UTF8, "application/json");

    public static Task<HttpResponseMessage> PostJsonAsync(this HttpClient http, string path, object body) => http.PostAsJsonAsync(path, body);
}
