namespace Hypercore.Cli.Progress;

/// <summary>Shows the phases a wait goes through on stderr. Dispose ends the display.</summary>
internal abstract class WaitProgress : IProgress<string>, IAsyncDisposable
{
    public static WaitProgress Create(TextWriter error, bool isTerminal, TimeProvider time) =>
        isTerminal ? new SpinnerProgress(error, time) : new PlainProgress(error);

    public abstract void Report(string value);

    public abstract ValueTask DisposeAsync();
}

/// <summary>For logs and pipes: one line per phase change, nothing else.</summary>
internal sealed class PlainProgress(TextWriter error) : WaitProgress
{
    public override void Report(string value)
    {
        error.WriteLine(value);
        error.Flush();
    }

    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>
/// For a terminal: one line redrawn in place with a spinner and the time waited; each phase that is left
/// behind stays on screen as its own line, so the history is still visible afterwards.
/// </summary>
internal sealed class SpinnerProgress : WaitProgress
{
    private static readonly string[] Frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
    private const string ClearLine = "\r\u001b[2K";

    private readonly TextWriter _error;
    private readonly TimeProvider _time;
    private readonly long _started;
    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private string? _current;
    private int _frame;

    public SpinnerProgress(TextWriter error, TimeProvider time)
    {
        _error = error;
        _time = time;
        _started = time.GetTimestamp();
        _loop = Task.Run(AnimateAsync);
    }

    public override void Report(string value)
    {
        lock (_lock)
        {
            if (_current is not null)
            {
                _error.Write(ClearLine);
                _error.WriteLine($"  {_current}");
            }

            _current = value;
            Draw();
        }
    }

    public override async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
        }

        lock (_lock)
        {
            _error.Write(ClearLine);
            if (_current is not null)
            {
                _error.WriteLine($"  {_current}");
            }

            _error.Flush();
        }

        _stop.Dispose();
    }

    private async Task AnimateAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(100), _time, _stop.Token);
            lock (_lock)
            {
                _frame = (_frame + 1) % Frames.Length;
                Draw();
            }
        }
    }

    private void Draw()
    {
        if (_current is null)
        {
            return;
        }

        var waited = _time.GetElapsedTime(_started);
        _error.Write($"{ClearLine}{Frames[_frame]} {_current} ({(int)waited.TotalSeconds}s)");
        _error.Flush();
    }
}
