using System.Net;

namespace Hypercore.Images.Tests.Fixtures;

/// <summary>A tiny HttpListener server on a free loopback port; the handler answers every request.</summary>
internal sealed class LoopbackHttpServer : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _loop;
    private readonly Func<HttpListenerContext, Task> _handler;

    public int Port { get; }
    public string Host => $"127.0.0.1:{Port}";

    public LoopbackHttpServer(Func<HttpListenerContext, Task> handler)
    {
        _handler = handler;
        Port = Tools.FreePort();
        _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            _ = Task.Run(async () =>
            {
                try { await _handler(context); }
                catch (Exception e)
                {
                    try { context.Response.StatusCode = 500; await Write(context.Response, e.ToString()); } catch (Exception) { }
                }
                finally { try { context.Response.Close(); } catch (Exception) { } }
            });
        }
    }

    public static async Task Write(HttpListenerResponse response, string text, string contentType = "application/json")
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        response.ContentType = contentType;
        response.ContentLength64 = bytes.Length;
        await response.OutputStream.WriteAsync(bytes);
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        _listener.Close();
        try { await _loop; } catch (Exception) { }
    }
}
