using System.Text;
using Hypercore.Consoles;
using Hypercore.HostAccess;

namespace Hypercore.GuestHealth;

/// <summary>
/// Follows one VM's console log from an offset (the start of the current boot), returning whole lines as they
/// arrive. Rotation is copy-truncate (<see cref="ConsoleLogFiles"/>): after one rotation since the last read the bytes
/// not read yet are in <c>console.log.1</c> at the same offsets, after more <c>.1</c> is a later part read from its
/// start (<see cref="ConsoleLogFiles.Resume"/>); the log is then followed from 0. On the first read, a log shorter
/// than the offset counts as rotated once. The file is opened read-only and never through a link.
/// </summary>
public sealed class ConsoleTail
{
    /// <summary>Most read per call; a guest printing faster than this is read over several probes.</summary>
    public const int MaxReadBytes = 4 * 1024 * 1024;

    /// <summary>A line longer than this is cut and matched in pieces (a guest that never prints a newline).</summary>
    public const int MaxLineChars = 16 * 1024;

    private readonly string _path;
    private readonly Decoder _decoder = new UTF8Encoding(false, false).GetDecoder();
    private readonly StringBuilder _partial = new();
    private long _offset;
    private long? _rotations; // ConsoleLogFiles.RotationCount at the last read

    public ConsoleTail(string path, long offset)
    {
        _path = path;
        _offset = Math.Max(0, offset);
    }

    public string Path => _path;

    /// <summary>Bytes of the current log consumed so far.</summary>
    public long Offset => _offset;

    /// <summary>Whole lines written since the last call (without their line ends). Missing file: none yet.</summary>
    public IReadOnlyList<string> ReadLines()
    {
        var lines = new List<string>();
        using var log = Open(_path);
        if (log is null)
        {
            return lines;
        }

        // Under the gate the rotation holds from copy to count (it runs in this process): the count, .1 and the log's
        // length and bytes belong together, so a shorter log with no rotation counted was replaced, not half rotated.
        lock (ConsoleLogFiles.RotationGate(_path))
        {
            var length = log.Length;
            var seen = _rotations ?? ConsoleLogFiles.RotationCount(_path) - (length < _offset ? 1 : 0);
            var next = ConsoleLogFiles.Resume(_path, seen, _offset, length);
            _rotations = next.Rotations;
            if (next.CutLine)
            {
                DropPartialLine();
            }

            var budget = MaxReadBytes;
            if (next.RotatedFrom is { } from)
            {
                using var part = Open(ConsoleLogFiles.Rotated(_path));
                if (part is not null && part.Length > from)
                {
                    budget -= ReadFrom(part, from, budget, lines);
                }
            }

            _offset = next.From + ReadFrom(log, next.From, budget, lines);
        }

        return lines;
    }

    private void DropPartialLine()
    {
        _partial.Clear();
        _decoder.Reset();
    }

    /// <summary>A part of the log, read-only, never through a link (<see cref="ConsoleLogFiles.OpenRead"/>); null when missing or refused.</summary>
    private static FileStream? Open(string path)
    {
        try
        {
            return ConsoleLogFiles.OpenRead(path);
        }
        catch (NotAPlainFileException)
        {
            return null;
        }
    }

    private int ReadFrom(FileStream stream, long from, int budget, List<string> lines)
    {
        var length = stream.Length;
        if (length <= from || budget <= 0)
        {
            return 0;
        }

        stream.Seek(from, SeekOrigin.Begin);
        var want = (int)Math.Min(budget, length - from);
        var bytes = new byte[Math.Min(want, 64 * 1024)];
        var chars = new char[Encoding.UTF8.GetMaxCharCount(bytes.Length)];
        var total = 0;
        while (total < want)
        {
            var n = stream.Read(bytes, 0, Math.Min(bytes.Length, want - total));
            if (n == 0)
            {
                break;
            }

            total += n;
            var count = _decoder.GetChars(bytes, 0, n, chars, 0);
            for (var i = 0; i < count; i++)
            {
                var c = chars[i];
                if (c == '\n')
                {
                    lines.Add(TakeLine());
                }
                else if (c != '\r')
                {
                    _partial.Append(c);
                    if (_partial.Length >= MaxLineChars)
                    {
                        lines.Add(TakeLine());
                    }
                }
            }
        }

        return total;
    }

    private string TakeLine()
    {
        var line = _partial.ToString();
        _partial.Clear();
        return line;
    }
}
