using System.CommandLine;
using System.Globalization;
using Google.Protobuf;
using Hypercore.Cli.Output;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Commands;

/// <summary>Images (issue 11): `vis image ls|rm|prune` over vm.services.api.ImageService.</summary>
internal static class ImageCommands
{
    private static readonly JsonFormatter Json = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true).WithIndentation());

    public static Command Build(Cli.CommandRunner runner)
    {
        var image = new Command("image", "The node's cache of OCI images pulled for VMs");

        var ls = new Command("ls", "List cached images: reference, digest, VMs using them, size");
        ls.Aliases.Add("list");
        runner.SetAction(ls, async (inv, ct) =>
        {
            var response = await inv.Client.Images.ListAsync(new ListImagesRequest(), cancellationToken: ct);
            Print(inv, response, response.Images, $"{response.Images.Count} image(s), {Size(response.CacheBytes)} in the cache");
            return ExitCodes.Ok;
        });

        var rm = new Command("rm", "Remove one cached image no VM uses");
        var reference = new Argument<string>("image") { Description = "A reference as listed (registry/repo:tag) or a digest (sha256:...)" };
        rm.Add(reference);
        runner.SetAction(rm, async (inv, ct) =>
        {
            var name = inv.Parse.GetRequiredValue(reference);
            await inv.Client.Images.RemoveAsync(new RemoveImageRequest { Image = name }, cancellationToken: ct);
            await inv.Out.WriteLineAsync($"removed {name}");
            return ExitCodes.Ok;
        });

        var prune = new Command("prune", "Remove every cached image no VM uses");
        runner.SetAction(prune, async (inv, ct) =>
        {
            var response = await inv.Client.Images.PruneAsync(new PruneImagesRequest(), cancellationToken: ct);
            Print(inv, response, response.Removed, $"removed {response.Removed.Count} image(s); {Size(response.CacheBytes)} left in the cache");
            return ExitCodes.Ok;
        });

        image.Add(ls);
        image.Add(rm);
        image.Add(prune);
        return image;
    }

    private static void Print(Invocation inv, IMessage message, IReadOnlyList<CachedImage> images, string summary)
    {
        if (inv.Printer.Format == OutputFormat.Json)
        {
            inv.Out.WriteLine(Json.Format(message));
            return;
        }

        if (inv.Printer.Format == OutputFormat.Yaml)
        {
            inv.Out.Write(ProtoYaml.FromJson(JsonFormatter.Default.Format(message)));
            return;
        }

        var rows = images.Select(i => new[]
        {
            i.References.Count > 0 ? string.Join(",", i.References) : "<none>",
            i.Digest.Length > 19 ? i.Digest[..19] : i.Digest,
            i.Users.Count > 0 ? string.Join(",", i.Users.Select((uid, n) => n < i.UserNames.Count && i.UserNames[n].Length > 0 ? i.UserNames[n] : uid)) : "-",
            Size(i.SizeBytes),
        }).ToList();
        if (rows.Count > 0)
        {
            string[] headers = ["REFERENCE", "DIGEST", "USED BY", "SIZE"];
            var widths = headers.Select((h, c) => Math.Max(h.Length, rows.Max(r => r[c].Length))).ToArray();
            inv.Out.WriteLine(string.Join("  ", headers.Select((h, c) => h.PadRight(widths[c]))).TrimEnd());
            foreach (var row in rows)
            {
                inv.Out.WriteLine(string.Join("  ", row.Select((v, c) => v.PadRight(widths[c]))).TrimEnd());
            }
        }

        inv.Out.WriteLine(summary);
    }

    private static string Size(long bytes) => bytes >= 1024 * 1024
        ? (bytes / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture) + " MiB"
        : (bytes / 1024.0).ToString("0.0", CultureInfo.InvariantCulture) + " KiB";
}
