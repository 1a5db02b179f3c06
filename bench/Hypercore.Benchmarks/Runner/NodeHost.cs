using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;

namespace Hypercore.Benchmarks.Runner;

/// <summary>
/// The host builders of the benchmark's in-process nodes (<see cref="Api.InProcessNode"/>, the reconcile-scale host):
/// the daemon's host handling (DaemonHost.Compose: content root = the binary's directory, no configuration sources but
/// its own) and no file watcher at all.
/// </summary>
/// <remarks>
/// The defaults (<c>WebApplication.CreateSlimBuilder()</c>, <c>Host.CreateApplicationBuilder()</c>) make the current
/// directory the content root and add appsettings.json with reload on change: a recursive FileSystemWatcher on it,
/// started while the builder is made. Run from a directory that holds the work directory, every SQLite write raised an
/// inotify event (running8: the file watcher thread 9.3 % of a child's CPU); run from the repository, the child watched
/// the whole tree. Clearing the configuration sources afterwards (as the daemon does) does not stop that watcher (measured:
/// the same inotify watches), so the reload is turned off before the builder adds the file: the host setting
/// <c>hostBuilder:reloadConfigOnChange</c>, given as the builder's only argument.
/// </remarks>
public static class NodeHost
{
    /// <summary>The only argument the builders get: no reload of appsettings.json, so no FileSystemWatcher.</summary>
    private static readonly string[] NoReload = ["--hostBuilder:reloadConfigOnChange=false"];

    /// <summary><c>WebApplication.CreateSlimBuilder</c> as the daemon makes it, with no configuration source left and no watcher.</summary>
    public static WebApplicationBuilder CreateWebBuilder()
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = NoReload, ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.Sources.Clear(); // as DaemonHost.Compose: only what the code sets
        return builder;
    }

    /// <summary><c>Host.CreateApplicationBuilder</c> the same way.</summary>
    public static HostApplicationBuilder CreateHostBuilder()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = NoReload, ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.Sources.Clear();
        return builder;
    }
}
