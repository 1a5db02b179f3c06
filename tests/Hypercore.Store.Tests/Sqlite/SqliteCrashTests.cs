using System.Diagnostics;
using Hypercore.MicroVms;
using Microsoft.Data.Sqlite;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// An acknowledged write must survive the process being killed with SIGKILL at any moment: a child process
/// writes as fast as it can and reports each acknowledged write; the test kills it mid-stream and then checks
/// every reported write in the database it left behind.
/// </summary>
[TestFixture]
public sealed class SqliteCrashTests
{
    private const int AcksBeforeKill = 400;

    private TempDatabase _database = null!;
    private Process? _child;

    [SetUp]
    public void SetUp() => _database = new TempDatabase();

    [TearDown]
    public void TearDown()
    {
        try
        {
            if (_child is { HasExited: false })
            {
                _child.Kill(entireProcessTree: true);
                _child.WaitForExit(30_000);
            }
        }
        finally
        {
            _child?.Dispose();
            _child = null;
            _database.Dispose();
        }
    }

    [Test]
    [CancelAfter(120_000)]
    public Task WriterKilledWithSigkill_EveryAcknowledgedWriteSurvives(CancellationToken cancellationToken) =>
        KillAndCheckAsync(checkpointFrames: null, cancellationToken);

    /// <summary>
    /// The same with the WAL checkpointed all the time (issue 15, seventh pass: off the writer thread, every 8 frames in the
    /// background and every 32 on the writer), killed only after several background checkpoints: pages copied into the
    /// database file by another connection while commits went on lose nothing either.
    /// </summary>
    [Test]
    [CancelAfter(120_000)]
    public Task WriterKilledWithSigkill_WhileCheckpointingInTheBackground_EveryAcknowledgedWriteSurvives(CancellationToken cancellationToken) =>
        KillAndCheckAsync(checkpointFrames: 8, cancellationToken);

    private async Task KillAndCheckAsync(int? checkpointFrames, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(typeof(SqliteCrashTests).Assembly.Location);
        start.ArgumentList.Add(CrashWriter.Mode);
        start.ArgumentList.Add(_database.Path);
        start.ArgumentList.Add("8");
        if (checkpointFrames is { } frames)
        {
            start.ArgumentList.Add(frames.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        _child = Process.Start(start)!;
        var stderr = _child.StandardError.ReadToEndAsync(cancellationToken);

        var created = new HashSet<string>();
        var statused = new HashSet<string>();
        var claimed = new HashSet<string>();
        var claimedWithStatus = new HashSet<string>();
        var killed = false;
        long checkpoints = 0;
        const long CheckpointsBeforeKill = 5;
        while (await _child.StandardOutput.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.StartsWith("checkpoints ", StringComparison.Ordinal))
            {
                checkpoints = long.Parse(line["checkpoints ".Length..], System.Globalization.CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("acked-claim-status ", StringComparison.Ordinal))
            {
                claimedWithStatus.Add(line["acked-claim-status ".Length..]);
            }
            else if (line.StartsWith("acked-claim ", StringComparison.Ordinal))
            {
                claimed.Add(line["acked-claim ".Length..]);
            }
            else if (line.StartsWith("acked-status ", StringComparison.Ordinal))
            {
                statused.Add(line["acked-status ".Length..]);
            }
            else if (line.StartsWith("acked ", StringComparison.Ordinal))
            {
                created.Add(line["acked ".Length..]);
            }

            if (!killed && created.Count >= AcksBeforeKill && (checkpointFrames is null || checkpoints >= CheckpointsBeforeKill))
            {
                _child.Kill(); // SIGKILL on Unix: no finalizers, no flush, no dispose
                killed = true;
            }

            // Lines already in the pipe when the kill lands were acknowledged before it: keep reading them.
        }

        await _child.WaitForExitAsync(cancellationToken);
        killed.Should().BeTrue($"the writer stopped before {AcksBeforeKill} acks (and {CheckpointsBeforeKill} checkpoints when asked; {checkpoints} seen); stderr: {await stderr}");
        _child.ExitCode.Should().Be(128 + 9, "the writer must have died by SIGKILL, not exited");

        using (var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = _database.Path, Pooling = false }.ToString()))
        {
            connection.Open();
            using var check = connection.CreateCommand();
            check.CommandText = "PRAGMA integrity_check;";
            check.ExecuteScalar().Should().Be("ok");
        }

        await using var store = _database.Open();
        var stored = (await store.ListAsync(MicroVmSpec.DefaultNamespace, cancellationToken)).ToDictionary(v => v.Spec.Id);
        await TestContext.Out.WriteLineAsync($"acked {created.Count} creates, {statused.Count} status writes and {claimed.Count} claims before SIGKILL ({checkpoints} background checkpoints); {stored.Count} records on disk");

        created.Should().OnlyContain(id => stored.ContainsKey(id), "every acknowledged create must be on disk");
        statused.Should().NotBeEmpty();
        foreach (var id in statused)
        {
            stored[id].Status.Phase.Should().Be(Phase.Running, $"the acknowledged status write of {id} must be on disk");
        }

        claimed.Should().NotBeEmpty();
        foreach (var id in claimed)
        {
            stored[id].Claimed.Should().BeTrue($"the acknowledged claim of {id} must be on disk");
        }

        claimedWithStatus.Should().NotBeEmpty();
        foreach (var id in claimedWithStatus)
        {
            stored[id].Claimed.Should().BeTrue($"the acknowledged claim-and-status write of {id} must be on disk");
            stored[id].Status.Phase.Should().Be(Phase.Provisioning, $"the acknowledged claim-and-status write of {id} must be on disk");
        }

        stored.Count.Should().BeGreaterThanOrEqualTo(created.Count);
    }
}
