using System.Diagnostics.CodeAnalysis;
using System.Text.RegularExpressions;

namespace Hypercore.Api.MicroVms;

/// <summary>
/// An OCI image reference as flintlock's clients send them (<c>ghcr.io/org/kernel:6.1</c>,
/// <c>registry:5000/repo@sha256:…</c>, <c>ubuntu:22.04</c>), parsed by the distribution reference grammar. Used to
/// answer such references precisely; this node does not pull images.
/// </summary>
public sealed partial record OciReference(string Registry, string Repository, string? Tag, string? Digest)
{
    private const string Component = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";

    [GeneratedRegex(
        "^(?:(?<registry>localhost(?::[0-9]+)?|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)+(?::[0-9]+)?|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?:[0-9]+)/)?" +
        "(?<repo>" + Component + "(?:/" + Component + ")*)" +
        "(?::(?<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?" +
        "(?:@(?<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?\\z")]
    private static partial Regex Grammar();

    /// <summary>
    /// True for a reference that has a registry, a path, a tag or a digest. A bare name ("default") is an image
    /// name in the node's image directory, and an absolute path is a file on the node: neither is a reference.
    /// </summary>
    public static bool TryParse(string value, [NotNullWhen(true)] out OciReference? reference)
    {
        reference = null;
        if (value.Length is 0 or > 512 || value.StartsWith('/') || value.IndexOfAny(['/', ':', '@']) < 0)
        {
            return false;
        }

        var m = Grammar().Match(value);
        if (!m.Success)
        {
            return false;
        }

        reference = new OciReference(
            m.Groups["registry"].Success ? m.Groups["registry"].Value : "docker.io",
            m.Groups["repo"].Value,
            m.Groups["tag"].Success ? m.Groups["tag"].Value : null,
            m.Groups["digest"].Success ? m.Groups["digest"].Value : null);
        return true;
    }

    public override string ToString() =>
        $"registry {Registry}, repository {Repository}" +
        (Tag is null ? "" : $", tag {Tag}") +
        (Digest is null ? "" : $", digest {Digest}");
}
