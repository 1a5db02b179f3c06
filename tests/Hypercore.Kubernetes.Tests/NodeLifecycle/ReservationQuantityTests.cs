using Hypercore.Store.Kubernetes.NodeLifecycle;

namespace Hypercore.Kubernetes.Tests.NodeLifecycle;

/// <summary>The reservation pod's memory request in canonical form, as KubernetesClient's ResourceQuantity wrote it.</summary>
[TestFixture]
public sealed class ReservationQuantityTests
{
    [TestCase(192, "192Mi")]
    [TestCase(1024, "1Gi")]
    [TestCase(1536, "1536Mi")]
    [TestCase(3072, "3Gi")]
    [TestCase(1024 * 1024, "1Ti")]
    [TestCase(0, "0")]
    public void MebibytesQuantity_IsCanonical(long mebibytes, string expected) =>
        PlacementController.MebibytesQuantity(mebibytes).Should().Be(expected);
}
