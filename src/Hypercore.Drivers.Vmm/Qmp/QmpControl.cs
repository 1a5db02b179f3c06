using System.Net.Sockets;
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

    /// <summary>How often a starting QEMU is checked for its QMP socket (a stat) and for being alive.</summary>
    public static readonly TimeSpan SocketPollInterval = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// Waits until QMP answers, failing fast when the process dies and naming its last output. QEMU creates the socket
    /// early in its start and sends the greeting only once its main loop runs (seconds later on a busy machine), so
    /// the socket's existence is polled every <see cref="SocketPollInterval"/>, and once it exists a connect waits in
    /// the listen backlog for the greeting. A retry backoff (the connector's 100 ms → 1 s) added up to its last delay
    /// to every start (issue 15, density: bench/NOTES.md).
    /// </summary>
    /// <returns>The query-status "status" of that first answer.</returns>
    public async Task<string> WaitUntilAnswersAsync(string socket, int pid, string label, string outputLog, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = time.GetUtcNow() + timeout;
        while (true)
        {
            if (!HostProcess.IsAlive(pid))
            {
                throw new DriverException("HypervisorError", $"{label} exited during start: {VmmOutput.Tail(outputLog)}");
            }

            string? why = null;
            if (File.Exists(socket))
            {
                try
                {
                    // The greeting may take the whole start: a connect given up and made again would leave QEMU a
                    // dead client to accept, greet and drop first (100 TCG starts at once: greetings after 15 s and more).
                    var left = deadline - time.GetUtcNow();
                    await using var qmp = await QmpClient.ConnectAsync(socket, time, left > commandTimeout ? left : commandTimeout, ct);
                    return await qmp.QueryStatusAsync(ct);
                }
                catch (SocketException ex)
                {
                    why = ex.Message; // bound, not listening yet
                }
                catch (QmpException ex) when (ex.ErrorClass == "Refused")
                {
                    throw new DriverException("HypervisorError", $"{label}: {ex.Message}"); // a planted link: waiting does not fix it
                }
                catch (QmpException ex)
                {
                    why = ex.Message; // no greeting in time, or the process is going away (checked above next time)
                }
            }

            if (time.GetUtcNow() >= deadline)
            {
                throw new DriverException("StartTimeout", $"{label} QMP socket {socket} did not answer within {timeout.TotalSeconds:0.#} s: " +
                    $"{why ?? "the socket was never created"}; {VmmOutput.Tail(outputLog)}");
            }

            await Task.Delay(SocketPollInterval, time, ct);
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
