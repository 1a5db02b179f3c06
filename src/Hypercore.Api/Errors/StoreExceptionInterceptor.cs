using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Hypercore.Operations;
using Hypercore.Store;
using Microsoft.Extensions.Logging;

namespace Hypercore.Api.Errors;

/// <summary>
/// Turns the application layer's refusals (<see cref="OperationException"/>) and store failures
/// (<see cref="StoreException"/>) into gRPC statuses in one place, for every method of every service (JSON
/// transcoding goes through the same pipeline, so HTTP clients get the matching HTTP codes). Handlers never build
/// these statuses themselves.
/// <para>
/// The API's method tables call <see cref="Unary{TService, TRequest, TResponse}"/> and
/// <see cref="ServerStreaming{TService, TRequest, TResponse}"/> around each handler (GrpcMethodEntry.AddTo, and the
/// HTTP/JSON gateway); it is not in gRPC's interceptor list. Issue 15 (call12): as a global gRPC interceptor every
/// call also went through gRPC's interceptor pipeline (two more async methods, an activation of the interceptor from
/// the request's services and its release); a call that completes at once now allocates nothing here, and one that
/// waits one async method. What is mapped, to which status, and what is logged is unchanged.
/// </para>
/// </summary>
public sealed partial class StoreExceptionInterceptor
{
    private readonly ILogger<StoreExceptionInterceptor> _log;

    public StoreExceptionInterceptor(ILogger<StoreExceptionInterceptor> log) => _log = log;

    /// <summary>Calls a unary handler; a refusal or store failure, thrown or in its task, becomes an <see cref="RpcException"/>.</summary>
    public Task<TResponse> Unary<TService, TRequest, TResponse>(
        UnaryServerMethod<TService, TRequest, TResponse> handler, TService service, TRequest request, ServerCallContext context)
    {
        Task<TResponse> task;
        try
        {
            task = handler(service, request, context);
        }
        catch (Exception ex)
        {
            // A faulted task either way, as from the async interceptor this replaced.
            return Task.FromException<TResponse>(Fault(ex, context.Method));
        }

        // Done already (a read from memory, a refusal found before any await): that very task, nothing allocated.
        return task.IsCompletedSuccessfully ? task : AwaitUnary(task, context.Method);
    }

    /// <summary>Calls a server-streaming handler; as <see cref="Unary{TService, TRequest, TResponse}"/>.</summary>
    public Task ServerStreaming<TService, TRequest, TResponse>(
        ServerStreamingServerMethod<TService, TRequest, TResponse> handler, TService service, TRequest request,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context)
    {
        Task task;
        try
        {
            task = handler(service, request, responseStream, context);
        }
        catch (Exception ex)
        {
            return Task.FromException(Fault(ex, context.Method));
        }

        return task.IsCompletedSuccessfully ? task : AwaitStreaming(task, context.Method);
    }

    private async Task<TResponse> AwaitUnary<TResponse>(Task<TResponse> task, string method)
    {
        try
        {
            return await task;
        }
        catch (Exception ex) when (IsMapped(ex))
        {
            throw Map(ex, method);
        }
    }

    private async Task AwaitStreaming(Task task, string method)
    {
        try
        {
            await task;
        }
        catch (Exception ex) when (IsMapped(ex))
        {
            throw Map(ex, method);
        }
    }

    /// <summary>The status a store failure means to a client.</summary>
    public static Status ToStatus(StoreException ex) => ex switch
    {
        NotFoundException => new Status(StatusCode.NotFound, ex.Message),
        AlreadyExistsException => new Status(StatusCode.AlreadyExists, ex.Message),
        ConflictException => new Status(StatusCode.Aborted, ex.Message),
        _ => new Status(StatusCode.Unavailable, "store unavailable: " + ex.Message),
    };

    /// <summary>The status a refused request means to a client.</summary>
    public static Status ToStatus(OperationException ex) => ex switch
    {
        InvalidSpecException or InvalidRequestException => new Status(StatusCode.InvalidArgument, ex.Message),
        MicroVmNotFoundException => new Status(StatusCode.NotFound, ex.Message),
        FailedPreconditionException => new Status(StatusCode.FailedPrecondition, ex.Message),
        ResourceExhaustedException => new Status(StatusCode.ResourceExhausted, ex.Message),
        Hypercore.Snapshots.SnapshotNotFoundException => new Status(StatusCode.NotFound, ex.Message),
        Hypercore.Snapshots.SnapshotExistsException => new Status(StatusCode.AlreadyExists, ex.Message),
        Hypercore.Snapshots.SnapshotFailedException => new Status(StatusCode.Internal, ex.Message),
        _ => new Status(StatusCode.Unknown, ex.Message),
    };

    /// <summary>What this maps: the application layer's refusals and the store's failures; anything else reaches gRPC as it is.</summary>
    private static bool IsMapped(Exception ex) => ex is StoreException or OperationException;

    /// <summary>The exception a caller's task faults with: <paramref name="ex"/> mapped to its status, or as it is.</summary>
    private Exception Fault(Exception ex, string method) => IsMapped(ex) ? Map(ex, method) : ex;

    private RpcException Map(Exception ex, string method)
    {
        var status = ex is StoreException store ? ToStatus(store) : ToStatus((OperationException)ex);
        if (status.StatusCode == StatusCode.Unavailable)
        {
            LogStoreFailure(method, ex.Message, ex);
        }

        return new RpcException(status);
    }

    [LoggerMessage(2100, LogLevel.Warning, "{Method}: store failure: {Message}")]
    private partial void LogStoreFailure(string method, string message, Exception ex);
}
