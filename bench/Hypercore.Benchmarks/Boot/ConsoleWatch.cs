using System.Text;

namespace Hypercore.Benchmarks.Boot;

/// <summary>
/// Follows a serial console log file for the guest's ready line. Polls every 10 ms (the same for bare QEMU and
/// the daemon, so the poll granularity cancels out of the ratio), reading only what was appended.
/// </summary>
public sealed class ConsoleWatch
{
    public const string GuestReady = "HYPERCORE-GUEST-READY";
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(10);

    private readonly string _path;
    private readonly byte[] _marker = Encoding.ASCII.GetBytes(GuestReady);
    private long _offset;
    private byte[] _tail = [];

    public ConsoleWatch(string path) => _path = path;

    public bool Seen { get; private set; }

    /// <summary>Reads what was appended since the last call; true once the marker has appeared.</summary>
    public bool Check()
    {
        if (Seen)
        {
            return true;
        }

        try
        {
            using var file = new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            if (file.Length <= _offset)
            {
                return false;
            }

            file.Seek(_offset, SeekOrigin.Begin);
            var fresh = new byte[file.Length - _offset];
            var read = file.ReadAtLeast(fresh, fresh.Length, throwOnEndOfStream: false);
            _offset += read;
            var window = new byte[_tail.Length + read];
            _tail.CopyTo(window, 0);
            Array.Copy(fresh, 0, window, _tail.Length, read);
            if (window.AsSpan().IndexOf(_marker) >= 0)
            {
                Seen = true;
                return true;
            }

            _tail = window.Length <= _marker.Length ? window : window[^(_marker.Length - 1)..];
            return false;
        }
        catch (FileNotFoundException)
        {
            return false;
        }
        catch (DirectoryNotFoundException)
        {
            return false;
        }
    }

    /// <summary>Polls until the marker appears; throws <see cref="TimeoutException"/> with the log's tail otherwise.</summary>
    public async Task WaitAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!Check())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"no {GuestReady} in {_path} within {timeout.TotalSeconds:0} s; log ends: {Tail()}");
            }

            await Task.Delay(PollInterval, ct);
        }
    }

    private string Tail()
    {
        try
        {
            var text = File.ReadAllText(_path);
            return text.Length > 600 ? text[^600..] : text;
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }
}
