using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.HttpJson;

internal interface IHttpJsonInvoker
{
    Task InvokeAsync(HttpContext http, HttpJsonRoute route);
}

internal sealed record HttpJsonMethodEntry(MethodDescriptor Descriptor, IHttpJsonInvoker Invoker);

/// <summary>Collects a service's methods from its generated BindService(binder, null) (descriptors only, no instance).</summary>
internal sealed class HttpJsonMethodCollector<[System.Diagnostics.CodeAnalysis.DynamicallyAccessedMembers(HttpJsonGateway.ServiceAccessibility)] TService>(Google.Protobuf.Reflection.ServiceDescriptor service, Action<ServiceBinderBase, TService?> bind) : ServiceBinderBase
    where TService : class
{
    public List<HttpJsonMethodEntry> Methods { get; } = [];

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler) =>
        Methods.Add(new(Find(method.Name), new HttpJsonMethod<TService, TRequest, TResponse>(method, bind, streaming: false)));

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) =>
        Methods.Add(new(Find(method.Name), new HttpJsonMethod<TService, TRequest, TResponse>(method, bind, streaming: true)));

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) =>
        RefuseHttpRule(method.Name);

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) =>
        RefuseHttpRule(method.Name);

    private MethodDescriptor Find(string name) =>
        service.FindMethodByName(name) ?? throw new InvalidOperationException($"{service.FullName} has no method {name}");

    private void RefuseHttpRule(string name)
    {
        if (Find(name).GetOptions()?.GetExtension(Google.Api.AnnotationsExtensions.Http) is not null)
        {
            throw new NotSupportedException($"{service.FullName}.{name}: client-streaming methods cannot have HTTP/JSON routes");
        }
    }
}

/// <summary>Picks one method's handler out of BindService(binder, instance): the delegate bound to this call's instance.</summary>
internal sealed class HttpJsonHandlerPicker<TRequest, TResponse>(string name) : ServiceBinderBase
    where TRequest : class
    where TResponse : class
{
    public UnaryServerMethod<TRequest, TResponse>? Unary { get; private set; }

    public ServerStreamingServerMethod<TRequest, TResponse>? ServerStreaming { get; private set; }

    public override void AddMethod<TReq, TResp>(Method<TReq, TResp> method, UnaryServerMethod<TReq, TResp>? handler)
    {
        if (method.Name == name)
        {
            Unary = (UnaryServerMethod<TRequest, TResponse>)(object)handler!;
        }
    }

    public override void AddMethod<TReq, TResp>(Method<TReq, TResp> method, ServerStreamingServerMethod<TReq, TResp>? handler)
    {
        if (method.Name == name)
        {
            ServerStreaming = (ServerStreamingServerMethod<TRequest, TResponse>)(object)handler!;
        }
    }

    public override void AddMethod<TReq, TResp>(Method<TReq, TResp> method, ClientStreamingServerMethod<TReq, TResp>? handler)
    {
    }

    public override void AddMethod<TReq, TResp>(Method<TReq, TResp> method, DuplexStreamingServerMethod<TReq, TResp>? handler)
    {
    }
}

/// <summary>
/// One method over HTTP/JSON: reads the request, creates the service as gRPC does (<see cref="IGrpcServiceActivator{T}"/>),
/// runs the handler inside the gRPC interceptors registered for every service, and writes the answer or the error.
/// </summary>
internal sealed partial class HttpJsonMethod<[System.Diagnostics.CodeAnalysis.DynamicallyAccessedMembers(HttpJsonGateway.ServiceAccessibility)] TService, TRequest, TResponse>(
    Method<TRequest, TResponse> method, Action<ServiceBinderBase, TService?> bind, bool streaming) : IHttpJsonInvoker
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
            var picker = new HttpJsonHandlerPicker<TRequest, TResponse>(method.Name);
            bind(picker, handle.Instance);
            var interceptors = Interceptors(services);
            if (streaming)
            {
                var call = picker.ServerStreaming!;
                for (var i = interceptors.Count - 1; i >= 0; i--)
                {
                    var (interceptor, next) = (interceptors[i], call);
                    call = (r, s, c) => interceptor.ServerStreamingServerHandler(r, s, c, next);
                }

                await call(request, new StreamWriter(http), context);
            }
            else
            {
                var call = picker.Unary!;
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
