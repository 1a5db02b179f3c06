using Hypercore.Cli.Progress;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Cli.Tests.Progress;

public sealed class WaitProgressTests
{
    [Test]
    public async Task Create_NotATerminal_WritesPlainLinesOnly()
    {
        var error = new SyncWriter();
        await using (var progress = WaitProgress.Create(error, isTerminal: false, TimeProvider.System))
        {
            progress.Report("default/web1: Pending");
            progress.Report("default/web1: Running");
        }

        error.ToString().Should().Be("default/web1: Pending\ndefault/web1: Running\n");
    }

    [Test]
    public async Task Create_Terminal_RedrawsOneLineAndKeepsEachPhaseLeftBehind()
    {
        var time = new FakeTimeProvider();
        var error = new SyncWriter();
        var progress = WaitProgress.Create(error, isTerminal: true, time);
        progress.Should().BeOfType<SpinnerProgress>();

        progress.Report("default/web1: Pending");
        time.Advance(TimeSpan.FromSeconds(3));
        progress.Report("default/web1: Running");
        await progress.DisposeAsync();

        var text = error.ToString();
        text.Should().Contain("\r\u001b[2K⠋ default/web1: Pending (0s)");
        text.Should().Contain("\r\u001b[2K  default/web1: Pending\n", "a phase left behind stays as a line");
        text.Should().Contain("default/web1: Running (3s)", "the line shows the time waited");
        text.Should().EndWith("\r\u001b[2K  default/web1: Running\n", "the spinner is cleared at the end");
    }
}
