namespace Hypercore.Reconciliation;

/// <summary>Issue 15: poll delays spread by count and jitter (<see cref="PollSpreading"/>).</summary>
public sealed partial class ReconcilerHost
{
    /// <summary>The current interval between two polls of one live VM, given the records cached now.</summary>
    public TimeSpan CurrentPollInterval => PollSpreading.Interval(_options.PollInterval, _options.MaxPollsPerSecond, _informer.Count);

    private TimeSpan NextPollDelay() => PollSpreading.Delay(CurrentPollInterval, Random.Shared.NextDouble());
}
