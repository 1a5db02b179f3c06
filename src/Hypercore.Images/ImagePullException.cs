namespace Hypercore.Images;

/// <summary>Why a pull, unpack or disk build failed; a VM condition reason can be derived from it.</summary>
public enum ImagePullErrorKind
{
    /// <summary>The registry does not know the tag or digest (MANIFEST_UNKNOWN / NAME_UNKNOWN).</summary>
    ManifestUnknown,
    /// <summary>A blob's bytes did not hash to its digest.</summary>
    DigestMismatch,
    /// <summary>The registry refused our credentials, or asked for some and we had none.</summary>
    Unauthorized,
    /// <summary>Connection refused, DNS failure, timeout: the registry did not answer.</summary>
    RegistryUnreachable,
    /// <summary>TLS failed (untrusted certificate, or a plain-HTTP registry that is not listed as insecure).</summary>
    TlsFailure,
    /// <summary>A manifest list/index without a linux/amd64 entry, or an unsupported media type.</summary>
    Unsupported,
    /// <summary>A layer is unsafe to unpack (path traversal, link escaping the root) or malformed.</summary>
    InvalidLayer,
    /// <summary>Any other error the registry answered with.</summary>
    RegistryError,
    /// <summary>mkfs.ext4 failed or is missing.</summary>
    DiskBuildFailed,
    /// <summary>The image lacks a file the VM needs (the kernel at boot/vmlinux or boot/vmlinuz, the initrd).</summary>
    MissingFile,
}

/// <summary>
/// A failed image operation. <see cref="RegistryMessage"/> carries the registry's own text
/// (<c>errors[].message</c> of the distribution API) when it sent one, so a condition can show it verbatim.
/// </summary>
public sealed class ImagePullException : Exception
{
    public ImagePullErrorKind Kind { get; }

    /// <summary>The image the operation was for, as the user wrote it (may be null for cache-level errors).</summary>
    public string? Reference { get; }

    /// <summary>The registry's <c>errors[].code: message</c> texts joined, when it sent any.</summary>
    public string? RegistryMessage { get; }

    public ImagePullException(ImagePullErrorKind kind, string? reference, string message, string? registryMessage = null, Exception? inner = null)
        : base(message, inner)
    {
        Kind = kind;
        Reference = reference;
        RegistryMessage = registryMessage;
    }

    public ImagePullException() : this(ImagePullErrorKind.RegistryError, null, "image operation failed") { }
    public ImagePullException(string message) : this(ImagePullErrorKind.RegistryError, null, message) { }
    public ImagePullException(string message, Exception inner) : this(ImagePullErrorKind.RegistryError, null, message, null, inner) { }
}
