namespace Hypercore.Informers;

/// <summary>Undoes a registration (a handler, a subscription to a driver's reports) once, however often disposed.</summary>
internal sealed class Unregister(Action action) : IDisposable
{
    private Action? _action = action;

    public void Dispose() => Interlocked.Exchange(ref _action, null)?.Invoke();
}
