namespace Hypercore.Images.Tests.Fixtures;

/// <summary>
/// One real docker-registry over plain HTTP for a whole fixture, a pusher for it, and a list of what each test made
/// that is disposed after the test.
/// </summary>
public abstract class PlainRegistryTest(string dirPrefix)
{
    private protected string Dir { get; private set; } = null!;

    private protected RegistryProcess Registry { get; private set; } = null!;

    private protected Pusher Pusher { get; private set; } = null!;

    /// <summary>Disposed (in order) after each test.</summary>
    private protected List<IDisposable> Disposables { get; } = [];

    [OneTimeSetUp]
    public async Task StartRegistry()
    {
        Dir = Tools.TempDir(dirPrefix);
        Registry = await RegistryProcess.StartAsync(Dir);
        Pusher = new Pusher($"http://{Registry.Host}");
    }

    [OneTimeTearDown]
    public async Task StopRegistry()
    {
        Pusher?.Dispose();
        if (Registry is not null) await Registry.DisposeAsync();
        Directory.Delete(Dir, recursive: true);
    }

    [TearDown]
    public void DisposeTestObjects()
    {
        foreach (var d in Disposables) d.Dispose();
        Disposables.Clear();
    }
}
