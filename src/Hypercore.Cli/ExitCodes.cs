namespace Hypercore.Cli;

/// <summary>Exit codes scripts can rely on. Documented in <c>vis --help</c> and docs/cli.md; never renumber.</summary>
public static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>The daemon returned an error not listed below, or something unexpected happened.</summary>
    public const int Error = 1;

    /// <summary>Bad flag, bad hac.toml or spec file, or the daemon rejected the request as invalid.</summary>
    public const int Usage = 2;

    public const int NotFound = 3;

    public const int AlreadyExists = 4;

    /// <summary>The daemon refused because the VM is not in a state that allows it (e.g. the provider cannot pause).</summary>
    public const int FailedPrecondition = 5;

    /// <summary>A --wait did not see the phase in time.</summary>
    public const int Timeout = 6;

    /// <summary>The daemon could not be reached.</summary>
    public const int Unavailable = 7;

    /// <summary>The VM reached Failed while waiting; its Ready condition message is printed.</summary>
    public const int VmFailed = 8;

    /// <summary>The daemon refused the caller: no or wrong credentials (Unauthenticated) or not allowed (PermissionDenied).</summary>
    public const int Denied = 9;

    /// <summary>Interrupted (Ctrl+C) while waiting.</summary>
    public const int Interrupted = 130;

    internal const string HelpText = """
        Exit codes:
          0    ok
          1    server or unexpected error
          2    usage error (bad flag, hac.toml or spec file; the daemon rejected the spec as invalid)
          3    not found
          4    already exists
          5    failed precondition
          6    timed out waiting (--wait)
          7    daemon unreachable
          8    the VM reached Failed while waiting (its Ready condition message is printed)
          9    refused: no or wrong credentials, or the identity may not do this
          130  interrupted
        """;
}
