using System.Text;
using Hypercore.Benchmarks.Machine;
using Hypercore.Benchmarks.Runner;

namespace Hypercore.Benchmarks.Report;

/// <summary>The console table and docs/benchmarks.md.</summary>
public static class ReportWriter
{
    public static string ConsoleTable(IReadOnlyList<ResultRow> rows)
    {
        string[] header = ["benchmark", "metric", "goal", "measured", "reference", "verdict"];
        var lines = rows.Select(r => new[] { r.Benchmark, r.Metric, r.Goal?.Text ?? "", r.Measured, r.Reference, VerdictText(r, markdown: false) }).ToList();
        var widths = header.Select((h, i) => Math.Max(h.Length, lines.Count == 0 ? 0 : lines.Max(l => l[i].Length))).ToArray();
        var sb = new StringBuilder();
        void Line(string[] cells) => sb.AppendLine(string.Join("  ", cells.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
        Line(header);
        Line(widths.Select(w => new string('-', w)).ToArray());
        foreach (var l in lines)
        {
            Line(l);
        }

        return sb.ToString();
    }

    public static string Markdown(
        IReadOnlyList<ResultRow> rows, MachineInfo machine, LoadAverage? loadBefore, LoadAverage? loadAfter, RunValidity validity, BenchOptions options, TimeSpan took, string? notes)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Benchmarks");
        sb.AppendLine();
        sb.AppendLine("<!-- Written by `bash bench/run.sh` (bench/Hypercore.Benchmarks); edit bench/NOTES.md for the text after the table. -->");
        sb.AppendLine();
        sb.AppendLine($"Run `bash bench/run.sh` (full) or `bash bench/run.sh --quick`; this page is rewritten by each run. This run: `{ModeText(options)}`, {took.TotalMinutes:0.#} min.");
        sb.AppendLine();
        if (!validity.Valid)
        {
            sb.AppendLine($"> **This run is {validity.Reason}.** The numbers below are printed as measured; do not quote them.");
            sb.AppendLine();
        }

        sb.AppendLine("## Machine");
        sb.AppendLine();
        sb.AppendLine("| | |");
        sb.AppendLine("|---|---|");
        sb.AppendLine($"| date | {machine.Date} |");
        sb.AppendLine($"| CPU | {machine.CpuModel}, {machine.Cores} cores visible |");
        sb.AppendLine($"| memory | {machine.MemoryKb / 1048576.0:0.0} GiB |");
        sb.AppendLine($"| kernel / OS | {machine.Kernel} / {machine.Os} |");
        sb.AppendLine($"| load average (1/5/15 min) | {loadBefore?.ToString() ?? "unknown"} at the start, {loadAfter?.ToString() ?? "unknown"} at the end |");
        sb.AppendLine($"| run | {validity.Reason} |");
        sb.AppendLine($"| runtime | {machine.DotnetVersion} |");
        sb.AppendLine($"| hypervisor | {machine.QemuVersion}, TCG (nested KVM hangs guests on this machine) |");
        sb.AppendLine();
        sb.AppendLine("## Results");
        sb.AppendLine();
        sb.AppendLine("| benchmark | metric | goal | measured | reference | verdict | method |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var r in rows)
        {
            sb.AppendLine($"| {Cell(r.Benchmark)} | {Cell(r.Metric)} | {Cell(r.Goal?.Text ?? "")} | {Cell(r.Measured)} | {Cell(r.Reference)} | {VerdictText(r, markdown: true)} | {Cell(r.Method)} |");
        }

        sb.AppendLine();
        if (!string.IsNullOrWhiteSpace(notes))
        {
            sb.AppendLine(notes.TrimEnd());
            sb.AppendLine();
        }

        return sb.ToString();
    }

    private static string ModeText(BenchOptions o) => o.Mode switch
    {
        BenchMode.Quick => "bash bench/run.sh --quick",
        BenchMode.Smoke => "--smoke",
        _ => "bash bench/run.sh",
    } + (o.Only.Count < BenchOptions.AllBenchmarks.Length ? $" --only {string.Join(',', BenchOptions.AllBenchmarks.Where(o.Only.Contains))}" : "");

    private static string VerdictText(ResultRow r, bool markdown) => r.Verdict switch
    {
        Verdict.Pass => "pass",
        Verdict.Miss => markdown ? "**miss**" : "MISS",
        Verdict.Skipped => "skipped",
        _ => "",
    };

    private static string Cell(string text) => text.Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
}
