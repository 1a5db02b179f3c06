using Microsoft.Extensions.Logging;

namespace Hypercore.Kubernetes.Tests.Support;

/// <summary>Writes log lines to the test's progress output, so a failing test shows what the store did.</summary>
public sealed class TestLogger<T> : ILogger<T>
{
    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        TestContext.Progress.WriteLine($"[{typeof(T).Name} {logLevel}] {formatter(state, exception)}{(exception is null ? "" : " " + exception.GetType().Name)}");
}
