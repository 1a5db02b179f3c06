using System.Runtime.CompilerServices;
using Grpc.Core;
using Grpc.Net.Client;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Client;

/// <summary>
/// A typed client for one vistarad node's <c>vm.services.api.VMService</c>:
/// <code>
/// using var vis = HypercoreClient.Connect("localhost:9090");
/// var vm = await vis.CreateMicroVmAsync(new MicroVmTemplate { Name = "web1" });
/// await vis.WaitForPhaseAsync("web1", MicroVmPhases.Running, TimeSpan.FromMinutes(2));
/// </code>
/// Server errors surface as <see cref="RpcException"/> with the daemon's status code (NotFound,
/// AlreadyExists, InvalidArgument, FailedPrecondition, Unavailable when the daemon cannot be reached).
/// A <paramref name="namespace"/> of null lets the daemon find the VM by id alone.
/// </summary>
public sealed class HypercoreClient : IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly HypercoreClientOptions _options;

    private HypercoreClient(Uri address, GrpcChannel channel, HypercoreClientOptions options)
    {
        Address = address;
        _channel = channel;
        _options = options;
        Service = new VMService.VMServiceClient(channel);
        Images = new ImageService.ImageServiceClient(channel);
        Node = new NodeService.NodeServiceClient(channel);
        Snapshots = new SnapshotService.SnapshotServiceClient(channel); // snapshots
    }

    /// <summary>Images (issue 11): the node's image cache (list, remove, prune).</summary>
    public ImageService.ImageServiceClient Images { get; }

    /// <summary>vm.services.api.SnapshotService on the same connection.</summary>
    public SnapshotService.SnapshotServiceClient Snapshots { get; }

    /// <summary>
    /// Connects to this node's daemon: its Unix socket (/var/lib/hypercore/vistarad.sock) when it exists and this
    /// process may use it, else localhost:9090.
    /// </summary>
    public static HypercoreClient ConnectLocal(HypercoreClientOptions? options = null) => Connect(HypercoreAddress.Default(), options);

    /// <summary>The daemon's gRPC address.</summary>
    public Uri Address { get; }

    /// <summary>The generated client, for calls this class does not wrap (custom headers, deadlines).</summary>
    public VMService.VMServiceClient Service { get; }

    /// <summary>
    /// Connects lazily (the first call opens the connection) to "host:port", "http(s)://host:port" or
    /// "unix:///path/to/vistarad.sock"; see <see cref="HypercoreAddress.Parse(string)"/>. Plain http speaks HTTP/2
    /// without TLS; with TLS options (<see cref="HypercoreClientOptions.TlsCaFile"/>, a client certificate) an address
    /// without a scheme is https. A token (<see cref="HypercoreClientOptions.Token"/> or its file) is sent as
    /// <c>authorization: Bearer</c>.
    /// </summary>
    /// <exception cref="FormatException">the address cannot be parsed.</exception>
    /// <exception cref="ArgumentException">a TLS or token file cannot be read.</exception>
    public static HypercoreClient Connect(string hostOrUrl, HypercoreClientOptions? options = null)
    {
        options ??= new HypercoreClientOptions();
        options.Validate();
        var address = HypercoreAddress.Parse(hostOrUrl, options.UsesTls);
        var handler = ClientTransport.Create(hostOrUrl, options);
        var channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            // Cancelling a call (Ctrl+C, a wait timeout) throws OperationCanceledException, not RpcException(Cancelled).
            ThrowOperationCanceledOnCancellation = true,
        });
        return new HypercoreClient(address, channel, options);
    }

    /// <summary>Stores the desired state; the daemon's reconciler boots it. Returns the stored record (with its uid).</summary>
    public async Task<MicroVM> CreateMicroVmAsync(MicroVMSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var response = await Service.CreateAsync(new CreateMicroVMRequest { Microvm = spec }, cancellationToken: cancellationToken);
        return response.Microvm;
    }

    /// <inheritdoc cref="CreateMicroVmAsync(MicroVMSpec, CancellationToken)"/>
    public Task<MicroVM> CreateMicroVmAsync(MicroVmTemplate template, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(template);
        return CreateMicroVmAsync(template.ToSpec(), cancellationToken);
    }

    /// <exception cref="RpcException">NotFound when there is no such VM.</exception>
    public async Task<MicroVM> GetMicroVmAsync(string id, string? @namespace = null, CancellationToken cancellationToken = default)
    {
        var response = await Service.GetAsync(new GetMicroVMRequest { Id = id, Namespace = @namespace ?? "" }, cancellationToken: cancellationToken);
        return response.Microvm;
    }

    /// <summary>Like <see cref="GetMicroVmAsync"/> but null when the VM does not exist.</summary>
    public async Task<MicroVM?> TryGetMicroVmAsync(string id, string? @namespace = null, CancellationToken cancellationToken = default)
    {
        try
        {
            return await GetMicroVmAsync(id, @namespace, cancellationToken);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>The generated client of vm.services.api.NodeService (the node's capacity).</summary>
    public NodeService.NodeServiceClient Node { get; }

    /// <summary>The node's capacity, allocatable, allocated and free memory and vCPUs (<c>vis node</c>).</summary>
    public async Task<GetNodeResponse> GetNodeAsync(CancellationToken cancellationToken = default) =>
        await Node.GetNodeAsync(new GetNodeRequest(), cancellationToken: cancellationToken);

    /// <summary>The VMs in one namespace, or in all namespaces when <paramref name="namespace"/> is null.</summary>
    public async Task<IReadOnlyList<MicroVM>> ListMicroVmsAsync(string? @namespace = null, CancellationToken cancellationToken = default)
    {
        var response = await Service.ListAsync(new ListMicroVMsRequest { Namespace = @namespace ?? "" }, cancellationToken: cancellationToken);
        return response.Microvm;
    }

    /// <summary>Asks for deletion. The record goes once the VM and its files are gone; see <see cref="WaitForDeletionAsync"/>.</summary>
    public async Task DeleteMicroVmAsync(string id, string? @namespace = null, CancellationToken cancellationToken = default) =>
        await Service.DeleteAsync(new DeleteMicroVMRequest { Id = id, Namespace = @namespace ?? "" }, cancellationToken: cancellationToken);

    /// <summary>Sets the desired state to Running. Returns the record as stored; the phase follows later.</summary>
    public async Task<MicroVM> StartAsync(string id, string? @namespace = null, CancellationToken cancellationToken = default) =>
        (await Service.StartAsync(Lifecycle(id, @namespace), cancellationToken: cancellationToken)).Microvm;

    /// <summary>Sets the desired state to Stopped.</summary>
    public async Task<MicroVM> StopAsync(string id, string? @namespace = null, CancellationToken cancellationToken = default) =>
        (await Service.StopAsync(Lifecycle(id, @namespace), cancellationToken: cancellationToken)).Microvm;

    /// <summary>Sets the desired state to Paused.</summary>
    public async Task<MicroVM> PauseAsync(string id, string? @namespace = null, CancellationToken cancellationToken = default) =>
        (await Service.PauseAsync(Lifecycle(id, @namespace), cancellationToken: cancellationToken)).Microvm;

    /// <summary>Sets the desired state back to Running from Paused.</summary>
    public async Task<MicroVM> ResumeAsync(string id, string? @namespace = null, CancellationToken cancellationToken = default) =>
        (await Service.ResumeAsync(Lifecycle(id, @namespace), cancellationToken: cancellationToken)).Microvm;

    /// <summary>
    /// Every change of the selected VMs (one id, one namespace, or all when both are null), starting with
    /// their current state, until the daemon ends the stream or <paramref name="cancellationToken"/> fires.
    /// </summary>
    public async IAsyncEnumerable<WatchMicroVMsResponse> WatchAsync(
        string? id = null, string? @namespace = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var call = OpenWatch(id, @namespace, cancellationToken);
        await foreach (var change in call.ResponseStream.ReadAllAsync(cancellationToken))
        {
            yield return change;
        }
    }

    /// <summary>The raw Watch call; its response headers arrive once the daemon has subscribed.</summary>
    internal AsyncServerStreamingCall<WatchMicroVMsResponse> OpenWatch(string? id, string? @namespace, CancellationToken cancellationToken) =>
        Service.Watch(new WatchMicroVMsRequest { Id = id ?? "", Namespace = @namespace ?? "" }, cancellationToken: cancellationToken);

    /// <summary>
    /// The VM's serial console output. With <paramref name="follow"/> the stream stays open for new output;
    /// <paramref name="tailLines"/> &gt; 0 starts from the last lines already written.
    /// </summary>
    public async IAsyncEnumerable<ReadOnlyMemory<byte>> StreamLogsAsync(
        string id, bool follow = false, int tailLines = 0, string? @namespace = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tailLines);
        var request = new LogsRequest { Id = id, Namespace = @namespace ?? "", Follow = follow, TailLines = tailLines };
        using var call = Service.Logs(request, cancellationToken: cancellationToken);
        await foreach (var chunk in call.ResponseStream.ReadAllAsync(cancellationToken))
        {
            yield return chunk.Data.Memory;
        }
    }

    /// <summary>
    /// Waits until the daemon reports <paramref name="phase"/> for the current generation of the VM's spec,
    /// following Watch (polling Get where Watch is not available). Reports each phase it sees to
    /// <paramref name="progress"/>.
    /// </summary>
    /// <returns>The VM as it was when it reached the phase.</returns>
    /// <exception cref="MicroVmFailedException">the VM reached Failed first (unless Failed is what was asked for).</exception>
    /// <exception cref="TimeoutException">the phase was not reached within <paramref name="timeout"/>.</exception>
    /// <exception cref="RpcException">NotFound when the VM does not exist or is deleted while waiting.</exception>
    public async Task<MicroVM> WaitForPhaseAsync(
        string id, string phase, TimeSpan timeout, IProgress<string>? progress = null, string? @namespace = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(phase);
        var waiter = new PhaseWaiter(this, id, @namespace, phase, progress, _options);
        var reached = await waiter.RunAsync(timeout, cancellationToken);
        return reached!;
    }

    /// <summary>
    /// Guest health: waits until the VM is Running and its readiness probe succeeded (condition GuestReady=True).
    /// </summary>
    /// <exception cref="TimeoutException">not ready within <paramref name="timeout"/>; the message carries the probe's last message.</exception>
    public async Task<MicroVM> WaitForGuestReadyAsync(
        string id, TimeSpan timeout, IProgress<string>? progress = null, string? @namespace = null,
        CancellationToken cancellationToken = default)
    {
        var waiter = new PhaseWaiter(this, id, @namespace, MicroVmPhases.Running, progress, _options, guestReady: true);
        var reached = await waiter.RunAsync(timeout, cancellationToken);
        return reached!;
    }

    /// <summary>Waits until the VM's record is gone (its deletion finished), following Watch or polling Get.</summary>
    /// <exception cref="TimeoutException">the record was still there after <paramref name="timeout"/>.</exception>
    public async Task WaitForDeletionAsync(
        string id, TimeSpan timeout, IProgress<string>? progress = null, string? @namespace = null,
        CancellationToken cancellationToken = default)
    {
        var waiter = new PhaseWaiter(this, id, @namespace, phase: null, progress, _options);
        await waiter.RunAsync(timeout, cancellationToken);
    }

    public void Dispose() => _channel.Dispose();

    private static LifecycleRequest Lifecycle(string id, string? @namespace) => new() { Id = id, Namespace = @namespace ?? "" };
}
