using System.Runtime.Versioning;
using Hypercore.Daemon.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>
/// Issue 15 (cpu11): ASP.NET Core's hosting starts an Activity and a logging scope for every request whenever its
/// diagnostics logger is on. The daemon turns that logger off where nothing would print them (the text format above
/// Debug), and leaves every other ASP.NET Core logger (Kestrel's application errors among them) at Warning.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class DaemonRequestLoggingTests
{
    private DirectoryInfo _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hypercore-request-logging-");

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    [TestCase("Warning", "text", false)]
    [TestCase("Information", "text", false)]
    [TestCase("Debug", "text", true)] // request lines are Debug/Information: shown when asked for
    [TestCase("Warning", "json", true)] // the json format prints scopes (trace id, request path)
    public async Task HostingDiagnostics_IsOnOnlyWhereItsRequestScopesAreWritten(string level, string format, bool on)
    {
        await using var app = DaemonHost.Build(new Dictionary<string, string?>
        {
            ["Daemon:StateDirectory"] = _dir.FullName,
            ["Daemon:GrpcEndpoint"] = "127.0.0.1:0",
            ["Daemon:HttpEndpoint"] = "127.0.0.1:0",
            ["Daemon:LogLevel"] = level,
            ["Daemon:LogFormat"] = format,
        }, new BoundEndpoints());
        var loggers = app.Services.GetRequiredService<ILoggerFactory>();

        // Hosting starts the per-request Activity and scope exactly when this is true.
        loggers.CreateLogger(DaemonHost.HostingDiagnosticsCategory).IsEnabled(LogLevel.Critical).Should().Be(on);
        loggers.CreateLogger("Microsoft.AspNetCore.Server.Kestrel").IsEnabled(LogLevel.Warning).Should().BeTrue();
        loggers.CreateLogger("Microsoft.AspNetCore.Hosting.Lifetime").IsEnabled(LogLevel.Warning).Should().BeTrue();
        loggers.CreateLogger("Hypercore.Api.Security.ApiSecurityMiddleware").IsEnabled(LogLevel.Warning).Should().BeTrue();
    }
}
