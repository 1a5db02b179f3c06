using System.Diagnostics.CodeAnalysis;
using System.Text.RegularExpressions;

namespace Hypercore.Images.References;

/// <summary>
/// An OCI image reference: <c>registry/repo:tag</c> or <c>registry/repo@sha256:hex</c>. A name whose first
/// path part does not look like a registry host (no dot, no port, not <c>localhost</c>) is NOT a reference:
/// it keeps meaning a folder in the node's image directory, so <see cref="TryParse"/> returns false for it.
/// </summary>
public sealed partial record ImageReference
{
    /// <summary>Registry host as written (with port), e.g. <c>localhost:5000</c>, <c>ghcr.io</c>, <c>docker.io</c>.</summary>
    public string Registry { get; }

    /// <summary>Repository path, e.g. <c>hypercore/default</c>; Docker Hub single names get <c>library/</c>.</summary>
    public string Repository { get; }

    /// <summary>Tag; <c>latest</c> when neither a tag nor a digest was given. Null when only a digest was given.</summary>
    public string? Tag { get; }

    /// <summary><c>sha256:hex</c> when pinned; a pull by digest ignores the tag.</summary>
    public string? Digest { get; }

    private ImageReference(string registry, string repository, string? tag, string? digest)
    {
        Registry = registry;
        Repository = repository;
        Tag = tag;
        Digest = digest;
    }

    /// <summary>The host the distribution API is served from (Docker Hub's API is not on docker.io).</summary>
    public string ApiHost => Registry == "docker.io" ? "registry-1.docker.io" : Registry;

    /// <summary>What to put after <c>/manifests/</c>: the digest when pinned, else the tag.</summary>
    public string ManifestReference => Digest ?? Tag!;

    public override string ToString() =>
        Digest is not null
            ? (Tag is null ? $"{Registry}/{Repository}@{Digest}" : $"{Registry}/{Repository}:{Tag}@{Digest}")
            : $"{Registry}/{Repository}:{Tag}";

    /// <summary>True when the text is meant as a registry reference (first part is a host), valid or not.</summary>
    public static bool LooksLikeReference(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return ImageSources.IsReference(text); // the one rule Core also uses to leave references to the images step
    }

    /// <summary>
    /// Parses a reference. Returns false with error null for a plain name (a local image folder), false with
    /// an error for something that looks like a reference but is malformed, true otherwise.
    /// </summary>
    public static bool TryParse(string text, [NotNullWhen(true)] out ImageReference? reference, out string? error)
    {
        reference = null;
        error = null;
        if (string.IsNullOrWhiteSpace(text) || !LooksLikeReference(text)) return false;

        var slash = text.IndexOf('/', StringComparison.Ordinal);
        var registry = text[..slash];
        var rest = text[(slash + 1)..];

        string? digest = null;
        var at = rest.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            digest = rest[(at + 1)..];
            rest = rest[..at];
            if (!DigestPattern().IsMatch(digest))
            {
                error = $"image reference '{text}': digest '{digest}' is not sha256:<64 lowercase hex digits>";
                return false;
            }
        }

        string? tag = null;
        var colon = rest.LastIndexOf(':');
        if (colon >= 0)
        {
            tag = rest[(colon + 1)..];
            rest = rest[..colon];
            if (!TagPattern().IsMatch(tag))
            {
                error = $"image reference '{text}': tag '{tag}' must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}";
                return false;
            }
        }

        if (!RegistryPattern().IsMatch(registry))
        {
            error = $"image reference '{text}': registry '{registry}' is not a host[:port]";
            return false;
        }
        if (rest.Length == 0 || rest.Split('/').Any(part => !ComponentPattern().IsMatch(part)))
        {
            error = $"image reference '{text}': repository '{rest}' must be lowercase path parts of [a-z0-9] separated by '.', '_', '__' or '-'";
            return false;
        }
        if (registry is "docker.io" or "index.docker.io")
        {
            registry = "docker.io";
            if (!rest.Contains('/', StringComparison.Ordinal)) rest = "library/" + rest;
        }

        if (tag is null && digest is null) tag = "latest";
        reference = new ImageReference(registry, rest, tag, digest);
        return true;
    }

    /// <summary>Parses or throws <see cref="FormatException"/> with the reason (also for a plain folder name).</summary>
    public static ImageReference Parse(string text)
    {
        if (TryParse(text, out var reference, out var error)) return reference;
        throw new FormatException(error ?? $"'{text}' is not an image reference (its first part is not a registry host); it names a local image folder");
    }

    /// <summary>The same image pinned to a digest (used once a tag has been resolved).</summary>
    public ImageReference WithDigest(string digest) => new(Registry, Repository, Tag, digest);

    [GeneratedRegex("^sha256:[a-f0-9]{64}\\z")]
    private static partial Regex DigestPattern();

    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\\z")]
    private static partial Regex TagPattern();

    [GeneratedRegex("^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\\z")]
    private static partial Regex ComponentPattern();

    [GeneratedRegex(@"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?\z|^\[[0-9a-fA-F:]+\](?::[0-9]{1,5})?\z")]
    private static partial Regex RegistryPattern();
}
