using Grpc.Core;
using Hypercore.Contracts.VmApi;
using Hypercore.Testing;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>
/// A test that runs vistarad with real guests: a fresh state dir holding the default guest image per test, and a
/// teardown that kills every guest it started and every process naming the dir (console, QMP socket, pid file), so a
/// failed test leaves nothing on a shared machine.
/// </summary>
public abstract class GuestStateDirTest
{
    private DirectoryInfo _dir = null!;

    /// <summary>Pids of the guests the test saw started; killed at teardown if still alive.</summary>
    protected List<int> GuestPids { get; } = [];

    protected string StateDir => Path.Combine(_dir.FullName, "state");

    [SetUp]
    public async Task CreateStateDirAsync()
    {
        _dir = Directory.CreateTempSubdirectory("hypercore-daemon-guest-");
        await GuestImage.InstallAsDefaultAsync(StateDir);
    }

    [TearDown]
    public void RemoveStateDir()
    {
        foreach (var pid in GuestPids.Where(ProcFs.IsAlive))
        {
            ProcFs.Kill(pid);
        }

        GuestPids.Clear();
        ProcFs.KillAll(_dir.FullName);
        _dir.Delete(recursive: true);
    }

    /// <summary>Polls Get by uid until the daemon answers NotFound (the delete finished).</summary>
    protected static async Task WaitUntilGoneAsync(VMService.VMServiceClient client, string uid, TimeSpan patience)
    {
        using var cts = new CancellationTokenSource(patience);
        while (true)
        {
            try
            {
                await client.GetAsync(new GetMicroVMRequest { Uid = uid }, cancellationToken: cts.Token);
                await Task.Delay(250, cts.Token);
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
            {
                return;
            }
        }
    }
}
