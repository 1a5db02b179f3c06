namespace Hypercore.Cli.Tests;

public sealed class DurationsTests
{
    [TestCase("90", 90_000)]
    [TestCase("90s", 90_000)]
    [TestCase("2m", 120_000)]
    [TestCase("1h30m", 5_400_000)]
    [TestCase("1m30s", 90_000)]
    [TestCase("500ms", 500)]
    [TestCase("00:01:30", 90_000)]
    public void TryParse_Valid_ReturnsDuration(string text, int milliseconds)
    {
        Durations.TryParse(text, out var value).Should().BeTrue();
        value.Should().Be(TimeSpan.FromMilliseconds(milliseconds));
    }

    [TestCase("")]
    [TestCase("0")]
    [TestCase("-5s")]
    [TestCase("5q")]
    [TestCase("m")]
    public void TryParse_Invalid_ReturnsFalse(string text) => Durations.TryParse(text, out _).Should().BeFalse();
}
