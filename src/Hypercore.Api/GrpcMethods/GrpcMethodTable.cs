using System.Diagnostics.CodeAnalysis;
using Google.Api;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Hypercore.Api.Errors;
using Hypercore.Api.HttpJson;

namespace Hypercore.Api.GrpcMethods;

/// <summary>
/// One gRPC service's methods, each with the generated <see cref="Method{TRequest, TResponse}"/>, a call into the
/// service class, and the method's google.api.http rule. Registered with gRPC through
/// <see cref="ServiceMethodProviderContext{TService}"/>'s non-virtual AddUnaryMethod &amp; co. instead of the generated
/// BindService, whose <c>ServiceBinderBase.AddMethod&lt;TRequest, TResponse&gt;</c> generic virtual calls the Native AOT
/// runtime resolves and builds at every start (bench/NOTES.md, grpcbind). Every instantiation here is spelled out in
/// <see cref="ApiMethodTables"/>, so the AOT compiler builds them ahead of time.
/// </summary>
internal sealed class GrpcMethodTable<[DynamicallyAccessedMembers(HttpJsonGateway.ServiceAccessibility)] TService>
    where TService : class
{
    private readonly List<GrpcMethodEntry<TService>> _methods = [];

    public IReadOnlyList<GrpcMethodEntry<TService>> Methods => _methods;

    public GrpcMethodTable<TService> Unary<TRequest, TResponse>(Method<TRequest, TResponse> method,
        UnaryServerMethod<TService, TRequest, TResponse> invoker, HttpRule? http = null)
        where TRequest : class
        where TResponse : class
    {
        _methods.Add(new UnaryEntry<TService, TRequest, TResponse>(method, invoker, http));
        return this;
    }

    public GrpcMethodTable<TService> ServerStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method,
        ServerStreamingServerMethod<TService, TRequest, TResponse> invoker, HttpRule? http = null)
        where TRequest : class
        where TResponse : class
    {
        _methods.Add(new ServerStreamingEntry<TService, TRequest, TResponse>(method, invoker, http));
        return this;
    }

    public GrpcMethodTable<TService> DuplexStreaming<TRequest, TResponse>(Method<TRequest, TResponse> method,
        DuplexStreamingServerMethod<TService, TRequest, TResponse> invoker)
        where TRequest : class
        where TResponse : class
    {
        _methods.Add(new DuplexStreamingEntry<TService, TRequest, TResponse>(method, invoker));
        return this;
    }
}

/// <summary>One method of a <see cref="GrpcMethodTable{TService}"/>.</summary>
internal abstract class GrpcMethodEntry<[DynamicallyAccessedMembers(HttpJsonGateway.ServiceAccessibility)] TService>(IMethod method, HttpRule? http)
    where TService : class
{
    public IMethod Method { get; } = method;

    /// <summary>The method's google.api.http rule as written in its .proto (null: gRPC only).</summary>
    public HttpRule? Http { get; } = http;

    /// <summary>Adds the method to gRPC, its handler called through <paramref name="errors"/> (the API's error mapping).</summary>
    public abstract void AddTo(ServiceMethodProviderContext<TService> context, IList<object> metadata, StoreExceptionInterceptor errors);

    /// <summary>The HTTP/JSON call of this method (unary and server-streaming methods only).</summary>
    public abstract IHttpJsonInvoker CreateHttpJsonInvoker();
}

internal sealed class UnaryEntry<[DynamicallyAccessedMembers(HttpJsonGateway.ServiceAccessibility)] TService, TRequest, TResponse>(Method<TRequest, TResponse> method,
    UnaryServerMethod<TService, TRequest, TResponse> invoker, HttpRule? http) : GrpcMethodEntry<TService>(method, http)
    where TService : class
    where TRequest : class
    where TResponse : class
{
    public override void AddTo(ServiceMethodProviderContext<TService> context, IList<object> metadata, StoreExceptionInterceptor errors) =>
        context.AddUnaryMethod(method, metadata, (s, r, c) => errors.Unary(invoker, s, r, c));

    public override IHttpJsonInvoker CreateHttpJsonInvoker() => new HttpJsonMethod<TService, TRequest, TResponse>(method, invoker, null);
}

internal sealed class ServerStreamingEntry<[DynamicallyAccessedMembers(HttpJsonGateway.ServiceAccessibility)] TService, TRequest, TResponse>(Method<TRequest, TResponse> method,
    ServerStreamingServerMethod<TService, TRequest, TResponse> invoker, HttpRule? http) : GrpcMethodEntry<TService>(method, http)
    where TService : class
    where TRequest : class
    where TResponse : class
{
    public override void AddTo(ServiceMethodProviderContext<TService> context, IList<object> metadata, StoreExceptionInterceptor errors) =>
        context.AddServerStreamingMethod(method, metadata, (s, r, w, c) => errors.ServerStreaming(invoker, s, r, w, c));

    public override IHttpJsonInvoker CreateHttpJsonInvoker() => new HttpJsonMethod<TService, TRequest, TResponse>(method, null, invoker);
}

internal sealed class DuplexStreamingEntry<[DynamicallyAccessedMembers(HttpJsonGateway.ServiceAccessibility)] TService, TRequest, TResponse>(Method<TRequest, TResponse> method,
    DuplexStreamingServerMethod<TService, TRequest, TResponse> invoker) : GrpcMethodEntry<TService>(method, null)
    where TService : class
    where TRequest : class
    where TResponse : class
{
    // Duplex streaming (reflection only): the interceptor never mapped these (it overrides unary and server streaming).
    public override void AddTo(ServiceMethodProviderContext<TService> context, IList<object> metadata, StoreExceptionInterceptor errors) =>
        context.AddDuplexStreamingMethod(method, metadata, invoker);

    public override IHttpJsonInvoker CreateHttpJsonInvoker() =>
        throw new NotSupportedException($"{method.ServiceName}.{method.Name}: client-streaming methods cannot have HTTP/JSON routes");
}

/// <summary>The google.api.http rules of <see cref="ApiMethodTables"/>, as the .proto files write them.</summary>
internal static class Http
{
    public static HttpRule Get(string path) => new() { Get = path };

    public static HttpRule Post(string path, string body) => new() { Post = path, Body = body };

    public static HttpRule Delete(string path) => new() { Delete = path };
}
