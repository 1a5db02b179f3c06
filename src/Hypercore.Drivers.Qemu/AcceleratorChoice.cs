namespace Hypercore.Drivers.Qemu;

internal enum AcceleratorMode
{
    Auto,
    Kvm,
    Tcg,
}

/// <summary>The accelerator a VM runs with and why (the reason ends up in status).</summary>
internal sealed record AcceleratorChoice(string Accel, string Reason)
{
    public bool IsKvm => Accel == "kvm";

    /// <summary>Shown in VmRuntimeInfo.Detail, e.g. "accel=tcg (kvm probe: no guest output in 10 s)".</summary>
    public string Detail => $"accel={Accel} ({Reason})";

    public static bool TryParse(string? value, out AcceleratorMode mode)
    {
        switch (value?.Trim().ToLowerInvariant())
        {
            case "auto":
            case "":
            case null:
                mode = AcceleratorMode.Auto;
                return true;
            case "kvm":
                mode = AcceleratorMode.Kvm;
                return true;
            case "tcg":
                mode = AcceleratorMode.Tcg;
                return true;
            default:
                mode = AcceleratorMode.Auto;
                return false;
        }
    }
}
