using Hypercore.Reconciliation;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.Reconciliation;

/// <summary>
/// Issue 15 (twelfth pass): the reconciler's inspect limit is a timed source handed out again once its inspect ended in
/// time. A reused source must behave as a new one: not cancelled when handed out, cancelled at its new limit, and one
/// that was cancelled is never handed out again.
/// </summary>
public class TimeLimitsTests
{
    [Test]
    public void Rent_AfterASourceCameBackUncancelled_HandsOutTheSameSource()
    {
        var limits = new TimeLimits(TimeProvider.System);
        var first = limits.Rent(TimeSpan.FromSeconds(30));
        limits.Return(first);

        for (var i = 0; i < 100; i++)
        {
            var next = limits.Rent(TimeSpan.FromSeconds(30));
            next.Should().BeSameAs(first);
            next.IsCancellationRequested.Should().BeFalse();
            limits.Return(next);
        }

        limits.Made.Should().Be(1);
    }

    [Test]
    public async Task Rent_AReusedSource_IsCancelledAtItsNewLimitAndNotAtTheOldOne()
    {
        var limits = new TimeLimits(TimeProvider.System);
        var first = limits.Rent(TimeSpan.FromMilliseconds(100));
        limits.Return(first); // before its 100 ms: its timer must not fire later

        var reused = limits.Rent(TimeSpan.FromSeconds(30));
        reused.Should().BeSameAs(first);
        await Task.Delay(400);
        reused.IsCancellationRequested.Should().BeFalse("the first limit was taken back with the source");
        limits.Return(reused);

        var again = limits.Rent(TimeSpan.FromMilliseconds(50));
        again.Should().BeSameAs(first);
        var cancelled = new TaskCompletionSource();
        using var registration = again.Token.Register(() => cancelled.TrySetResult());
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(20));
        again.IsCancellationRequested.Should().BeTrue("a reused source keeps its limit");
    }

    [Test]
    public void Return_ACancelledSource_IsNotHandedOutAgain()
    {
        var limits = new TimeLimits(TimeProvider.System);
        var first = limits.Rent(TimeSpan.FromSeconds(30));
        first.Cancel(); // the caller's token fired, or the limit passed
        limits.Return(first);

        var next = limits.Rent(TimeSpan.FromSeconds(30));
        next.Should().NotBeSameAs(first);
        next.IsCancellationRequested.Should().BeFalse();
        limits.Made.Should().Be(2);
    }

    [Test]
    public void Return_SourceWithACallbackLeftOnItsToken_TheCallbackNeverRunsForTheNextUse()
    {
        var limits = new TimeLimits(TimeProvider.System);
        var first = limits.Rent(TimeSpan.FromSeconds(30));
        var ran = false;
        first.Token.Register(() => ran = true); // an operation that did not unregister
        limits.Return(first);

        var next = limits.Rent(TimeSpan.FromSeconds(30));
        next.Should().BeSameAs(first);
        next.Cancel();
        ran.Should().BeFalse("what the last operation registered went with it");
    }

    [Test]
    public void Rent_WithAnInjectedClock_CancelsAtTheLimitOnThatClock()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var limits = new TimeLimits(time);
        var first = limits.Rent(TimeSpan.FromSeconds(5));
        time.Advance(TimeSpan.FromSeconds(4));
        first.IsCancellationRequested.Should().BeFalse();
        limits.Return(first);

        var next = limits.Rent(TimeSpan.FromSeconds(5));
        time.Advance(TimeSpan.FromSeconds(4));
        next.IsCancellationRequested.Should().BeFalse("a new limit of 5 s, not what was left of the old one");
        time.Advance(TimeSpan.FromSeconds(1));
        next.IsCancellationRequested.Should().BeTrue();
    }
}
