using Hypercore.Drivers;

namespace Hypercore.Drivers.Vmm.Qmp;

/// <summary>
/// The QMP conversations QEMU-based drivers have: status and its mapping to <see cref="LiveState"/>, one command,
/// waiting for a just-launched QEMU to answer, and the ACPI power-off request. One short session per call: QEMU
/// serves one QMP client per socket at a time.
/// </summary>
public sealed class QmpControl(TimeProvider time, TimeSpan commandTimeout)
{
    private readonly QmpConnector _connector = new(time, commandTimeout);

    /// <summary>query-status "status": running, paused, shutdown, prelaunch, internal-error, ...</summary>
    public async Task<string> StatusAsync(string socket, CancellationToken ct)
    {
        await using var qmp = await _connector.ConnectAsync(socket, ct);
        return await qmp.QueryStatusAsync(ct);
    }

    /// <summary>A session for a longer conversation (a snapshot); the caller disposes it.</summary>
    public Task<QmpClient> ConnectAsync(string socket, CancellationToken ct) => _connector.ConnectAsync(socket, ct);

    /// <summary>Runs one command; "quit" may lose its reply to the closing socket, which is success.</summary>
    public async Task ExecuteAsync(string socket, string command, CancellationToken ct)
    {
        await using var qmp = await _connector.ConnectAsync(socket, ct);
        try
        {
            await qmp.ExecuteAsync(command, null, ct);
        }
        catch (QmpException ex) when (command == "quit" && ex.ErrorClass == "Disconnected")
        {
            // QEMU closed the socket before the reply was read
        }
    }

    /// <summary>Resumes a paused guest (it cannot see the power button otherwise) and presses the ACPI power button.</summary>
    public async Task<bool> PowerDownAsync(string socket, CancellationToken ct)
    {
        await using var qmp = await _connector.ConnectAsync(socket, ct);
        var status = await qmp.QueryStatusAsync(ct);
        if (status is "paused" or "suspended")
        {
            await qmp.ExecuteAsync("cont", null, ct);
            status = "running";
        }

        if (status != "running")
        {
            return false;
        }

        await qmp.ExecuteAsync("system_powerdown", null, ct);
        return true;
    }

    /// <summary>Polls until QMP answers, failing fast when the process dies and naming its last output.</summary>
    public async Task WaitUntilAnswersAsync(string socket, int pid, string label, string outputLog, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = time.GetUtcNow() + timeout;
        while (true)
        {
            if (!HostProcess.IsAlive(pid))
            {
                throw new DriverException("HypervisorError", $"{label} exited during start: {VmmOutput.Tail(outputLog)}");
            }

            try
            {
                await StatusAsync(socket, ct);
                return;
            }
            catch (QmpException) when (time.GetUtcNow() < deadline)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100), time, ct);
            }
            catch (QmpException ex)
            {
                throw new DriverException("StartTimeout", $"{label} QMP socket {socket} did not answer within {timeout.TotalSeconds:0.#} s: {ex.Message}; {VmmOutput.Tail(outputLog)}");
            }
        }
    }

    /// <summary>QEMU's run state as a live state (and how a stopped guest ended).</summary>
    public static VmmState Map(string status) => status switch
    {
        "running" => new VmmState(LiveState.Running),
        "paused" or "suspended" => new VmmState(LiveState.Paused),
        // After a snapshot of a paused VM (migrate to a file): paused, and "cont" resumes it.
        "postmigrate" => new VmmState(LiveState.Paused),
        "io-error" => new VmmState(LiveState.Paused, Detail: "paused on an I/O error"),
        "prelaunch" or "inmigrate" => new VmmState(LiveState.Created),
        "shutdown" => new VmmState(LiveState.Exited, ExitKind.GuestShutdown, "the guest powered off"),
        "guest-panicked" or "internal-error" => new VmmState(LiveState.Exited, ExitKind.Crashed, $"qemu status {status}"),
        _ => new VmmState(LiveState.Unknown, Detail: $"qemu status {status}"),
    };
}
