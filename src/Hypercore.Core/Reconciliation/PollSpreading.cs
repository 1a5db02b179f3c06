namespace Hypercore.Reconciliation;

/// <summary>
/// Issue 15: when the next poll of a live VM is due. Every Running VM is polled (VMs die without telling anyone),
/// and at a fixed <see cref="ReconcilerOptions.PollInterval"/> the total rate grows with the VM count: 100,000 VMs
/// at 2 s would be 50,000 reconciles a second for ever. So the interval stretches once the count would exceed
/// <see cref="ReconcilerOptions.MaxPollsPerSecond"/>, and each delay is shortened by a random part of up to
/// <see cref="JitterFraction"/> so that VMs reconciled together (a restart's resync) drift apart instead of being
/// polled in the same burst every round. A delay is never longer than the stretched interval, so the worst-case
/// time to notice a dead VM is max(PollInterval, VMs ÷ MaxPollsPerSecond).
/// </summary>
public static class PollSpreading
{
    /// <summary>The largest share of the interval that jitter takes off a delay.</summary>
    public const double JitterFraction = 0.25;

    /// <summary>
    /// Polls fall due on multiples of this step (<see cref="WorkQueue{TKey}.AddAfter(TKey, TimeSpan, TimeSpan)"/>), so the
    /// polls due within one step start from one timer callback: at most 50 a second, however many VMs are polled
    /// (issue 15, eighteenth pass). A poll comes up to one step early, never late.
    /// </summary>
    public static readonly TimeSpan Step = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// The interval for <paramref name="count"/> polled records: <paramref name="pollInterval"/>, or longer when the
    /// count would poll more than <paramref name="maxPollsPerSecond"/> times a second on average.
    /// </summary>
    public static TimeSpan Interval(TimeSpan pollInterval, int maxPollsPerSecond, int count)
    {
        // Jitter shortens delays by JitterFraction / 2 on average; stretch so the average rate stays in budget.
        var needed = TimeSpan.FromSeconds(count / (maxPollsPerSecond * (1 - JitterFraction / 2)));
        return needed > pollInterval ? needed : pollInterval;
    }

    /// <summary>One VM's next delay: the interval less a random part of it. <paramref name="random01"/> is in [0, 1).</summary>
    public static TimeSpan Delay(TimeSpan interval, double random01) =>
        interval - interval * (JitterFraction * Math.Clamp(random01, 0, 1));
}
