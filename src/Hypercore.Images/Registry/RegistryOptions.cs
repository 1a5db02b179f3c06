namespace Hypercore.Images.Registry;

/// <summary>How the node talks to registries.</summary>
public sealed class RegistryOptions
{
    public const string SectionName = "Images:Registry";

    /// <summary>
    /// Docker <c>config.json</c>-format credentials (<c>{"auths": {"host:port": {"auth": base64(user:pass)}}}</c>).
    /// Null or missing file: anonymous (bearer tokens are still fetched anonymously when a registry asks).
    /// </summary>
    public string? CredentialsFile { get; set; }

    /// <summary>PEM file with extra CA certificates trusted in addition to the system store.</summary>
    public string? CaFile { get; set; }

    /// <summary>
    /// Registries (host[:port] exactly as in references) spoken to over plain HTTP. Everything else is HTTPS only:
    /// a plain-HTTP registry not listed here is refused, so no default lets a man-in-the-middle feed a guest.
    /// </summary>
    public IList<string> InsecureRegistries { get; set; } = new List<string>();

    /// <summary>Timeout for connecting and for each request's headers (bodies stream without a total timeout).</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);
}
