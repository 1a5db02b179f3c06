namespace Hypercore.Kubernetes.Tests.Support;

/// <summary>kubectl's default table output split into columns (cells never contain spaces in these tests).</summary>
public sealed record KubectlTable(string[] Header, IReadOnlyList<string[]> Rows)
{
    public static KubectlTable Parse(string stdout)
    {
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length == 0)
        {
            throw new FormatException("kubectl printed no table");
        }

        // Empty cells are runs of spaces: cut by the header's column starts instead of splitting on spaces.
        var header = lines[0];
        var starts = new List<int>();
        for (var i = 0; i < header.Length; i++)
        {
            if (header[i] != ' ' && (i == 0 || header[i - 1] == ' '))
            {
                starts.Add(i);
            }
        }

        string[] Cut(string line) => starts.Select((s, i) =>
        {
            var end = i + 1 < starts.Count ? starts[i + 1] : line.Length;
            return s >= line.Length ? "" : line[s..Math.Min(end, line.Length)].Trim();
        }).ToArray();

        return new KubectlTable(Cut(header), lines.Skip(1).Select(Cut).ToList());
    }

    public string[] Row(string name) =>
        Rows.FirstOrDefault(r => r[0] == name) ?? throw new InvalidOperationException($"no row {name} in the table");
}
