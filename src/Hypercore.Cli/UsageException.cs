namespace Hypercore.Cli;

/// <summary>The user asked for something that cannot work (bad value, bad file). Exit code 2.</summary>
public sealed class UsageException(string message, Exception? inner = null) : Exception(message, inner);
