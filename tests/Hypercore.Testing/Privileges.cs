namespace Hypercore.Testing;

/// <summary>
/// Tests that need root (tap devices, network namespaces) fail without it, never skip: CI and scripts/test.sh run
/// as root on the machines this project targets, so a missing privilege is a set-up error to see, not a pass.
/// </summary>
public static class Privileges
{
    public static bool IsRoot => Environment.UserName == "root";

    public static void RequireRoot(string what)
    {
        if (!IsRoot)
        {
            Assert.Fail($"{what} needs root: run the tests as root (scripts/test.sh)");
        }
    }
}
