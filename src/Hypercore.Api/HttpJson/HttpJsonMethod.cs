using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.AspNetCore.Server;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Hypercore.Api.Errors;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.HttpJson;

internal interface IHttpJsonInvoker
{
    Task InvokeAsync(HttpContext http, HttpJsonRoute route);
}

/// <summary>A method with an HTTP rule: its full protobuf name, its descriptor (looked up on first use) and its call.</summary>
internal sealed record HttpJsonMethodEntry(string Name, Func<MethodDescriptor> Descriptor, IHttpJsonInvoker Invoker);

/// <summary>
/// One method over HTTP/JSON: reads the request, creates the service as gRPC does (<see cref="IGrpcServiceActivator{T}"/>),
/// runs the handler through the API's error mapping (<see cref="StoreExceptionInterceptor"/>, as the gRPC method tables do) inside
/// the gRPC interceptors registered for every service, and writes the answer or the error.
/// </summary>
internal sealed partial class HttpJsonMethod<[System.Diagnostics.CodeAnalysis.DynamicallyAccessedMembers(HttpJsonGateway.ServiceAccessibility)] TService, TRequest, TResponse>(
    Method<TRequest, TResponse> method, UnaryServerMethod<TService, TRequest, TResponse>? unary,
    ServerStreamingServerMethod<TService, TRequest, TResponse>? serverStreaming) : IHttpJsonInvoker
    where TService : class
    where TRequest : class
    where TResponse : class
{
    // gRPC answers an unexpected exception with this text unless EnableDetailedErrors (off: it may hold internals).
    private const string HandlerFailed = "Exception was thrown by handler.";

    public async Task InvokeAsync(HttpContext http, HttpJsonRoute route)
    {
        var services = http.RequestServices;
        var context = new HttpJsonCallContext(http, method.FullName);
        var aborted = http.RequestAborted;
        TRequest request;
        try
        {
            request = (TRequest)await HttpJsonRequestReader.ReadAsync(http, route);
        }
        catch (HttpJsonException ex)
        {
            await HttpJsonWriter.WriteErrorAsync(http.Response, new Status(StatusCode.InvalidArgument, ex.Message), aborted);
            return;
        }

        var activator = services.GetRequiredService<IGrpcServiceActivator<TService>>();
        var handle = activator.Create(services);
        try
        {
            var instance = handle.Instance;
            var interceptors = Interceptors(services);
            // The API's error mapping around the handler, as the gRPC method tables bind it (GrpcMethodEntry.AddTo).
            var errors = services.GetRequiredService<StoreExceptionInterceptor>();
            if (serverStreaming is not null)
            {
                ServerStreamingServerMethod<TRequest, TResponse> call = (r, s, c) => errors.ServerStreaming(serverStreaming, instance, r, s, c);
                for (var i = interceptors.Count - 1; i >= 0; i--)
                {
                    var (interceptor, next) = (interceptors[i], call);
                    call = (r, s, c) => interceptor.ServerStreamingServerHandler(r, s, c, next);
                }

                await call(request, new StreamWriter(http), context);
            }
            else
            {
                UnaryServerMethod<TRequest, TResponse> call = (r, c) => errors.Unary(unary!, instance, r, c);
                for (var i = interceptors.Count - 1; i >= 0; i--)
                {
                    var (interceptor, next) = (interceptors[i], call);
                    call = (r, c) => interceptor.UnaryServerHandler(r, c, next);
                }

                var response = await call(request, context);
                if (context.Status.StatusCode == StatusCode.OK)
                {
                    await HttpJsonWriter.WriteMessageAsync(http.Response, (IMessage)response, newline: false, aborted);
                }
            }

            if (context.Status.StatusCode != StatusCode.OK)
            {
                await HttpJsonWriter.WriteErrorAsync(http.Response, context.Status, aborted);
            }
        }
        catch (RpcException ex)
        {
            await WriteErrorIfOpenAsync(http, ex.Status);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The client went away (an HTTP Watch or follow-Logs ends like this): nothing to answer.
        }
        catch (Exception ex)
        {
            LogHandlerFailed(services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(HttpJsonGateway).FullName!), method.FullName, ex);
            await WriteErrorIfOpenAsync(http, new Status(StatusCode.Unknown, HandlerFailed));
        }
        finally
        {
            await activator.ReleaseAsync(handle);
        }
    }

    private static async Task WriteErrorIfOpenAsync(HttpContext http, Status status)
    {
        if (!http.RequestAborted.IsCancellationRequested)
        {
            await HttpJsonWriter.WriteErrorAsync(http.Response, status, http.RequestAborted);
        }
    }

    /// <summary>The interceptors gRPC runs around this service's methods: the global ones, then the service's own.</summary>
    private static List<Interceptor> Interceptors(IServiceProvider services)
    {
        var list = new List<Interceptor>();
        var global = services.GetRequiredService<IOptions<GrpcServiceOptions>>().Value.Interceptors;
        var own = services.GetService<IOptions<GrpcServiceOptions<TService>>>()?.Value.Interceptors;
        foreach (var registration in own is null ? global : global.Concat(own))
        {
            // Registered in DI (as every interceptor of this API is): the same instance gRPC gets from its activator.
            list.Add((Interceptor)(services.GetService(registration.Type)
                ?? throw new InvalidOperationException($"gRPC interceptor {registration.Type} must be registered in the service collection to run on HTTP/JSON calls too")));
        }

        return list;
    }

    [LoggerMessage(2120, LogLevel.Error, "HTTP/JSON call {Method} failed")]
    private static partial void LogHandlerFailed(ILogger logger, string method, Exception exception);

    /// <summary>Each message of a server stream is one line of JSON, flushed as it is written.</summary>
    private sealed class StreamWriter(HttpContext http) : IServerStreamWriter<TResponse>
    {
        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(TResponse message) => WriteAsync(message, CancellationToken.None);

        // Handlers pass their own token (Watch cancels a slow consumer's writes); the interface's default refuses one.
        public async Task WriteAsync(TResponse message, CancellationToken cancellationToken)
        {
            using var both = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, cancellationToken);
            await HttpJsonWriter.WriteMessageAsync(http.Response, (IMessage)message, newline: true, both.Token);
            await http.Response.Body.FlushAsync(both.Token);
        }
    }
}
