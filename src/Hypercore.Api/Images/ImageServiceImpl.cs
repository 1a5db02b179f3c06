using System.Globalization;
using System.Runtime.Versioning;
using Grpc.Core;
using Hypercore.Api.Security;
using Hypercore.Contracts.VmApi;
using Hypercore.Images.Cache;
using Hypercore.Store;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Api.Images;

/// <summary>
/// Images (issue 11): vm.services.api.ImageService over the node's image cache (<c>vis image ls|rm|prune</c>). Listing
/// is open to every caller with a grant; removing and pruning change what every namespace's VMs may reuse, so they
/// need a grant of every namespace with write (the administrator; the node-local socket is one).
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class ImageServiceImpl(IServiceProvider services) : ImageService.ImageServiceBase
{
    private ImageCache Cache => services.GetService<ImageCache>()
        ?? throw new RpcException(new Status(StatusCode.FailedPrecondition, "this node has no image cache (the daemon was built without images)"));

    public override async Task<ListImagesResponse> List(ListImagesRequest request, ServerCallContext context)
    {
        Authorize(write: false);
        var cache = Cache;
        var response = new ListImagesResponse { CacheBytes = cache.SizeBytes() };
        foreach (var image in cache.List().OrderBy(i => i.References.Count > 0 ? i.References[0] : i.Digest, StringComparer.Ordinal))
        {
            var p = ToProto(image);
            p.UserNames.Add(await NamesAsync(image.Users, context.CancellationToken));
            response.Images.Add(p);
        }

        return response;
    }

    public override async Task<RemoveImageResponse> Remove(RemoveImageRequest request, ServerCallContext context)
    {
        Authorize(write: true);
        if (request.Image.Length == 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "image is required: a reference as listed by `vis image ls` or a digest (sha256:...)"));
        }

        try
        {
            await Cache.RemoveAsync(request.Image, context.CancellationToken);
        }
        catch (KeyNotFoundException ex)
        {
            throw new RpcException(new Status(StatusCode.NotFound, ex.Message));
        }
        catch (ImageInUseException ex)
        {
            var names = await NamesAsync(ex.Users, context.CancellationToken);
            var users = ex.Users.Select((uid, i) => names[i].Length > 0 ? $"{names[i]} (uid {uid})" : $"uid {uid}");
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"image {ex.Digest} ({string.Join(", ", ex.References)}) is used by VM(s) {string.Join(", ", users)}; delete them first"));
        }
        catch (InvalidOperationException ex)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, ex.Message));
        }

        return new RemoveImageResponse();
    }

    public override async Task<PruneImagesResponse> Prune(PruneImagesRequest request, ServerCallContext context)
    {
        Authorize(write: true);
        var cache = Cache;
        var removed = await cache.PruneAsync(context.CancellationToken);
        var response = new PruneImagesResponse { CacheBytes = cache.SizeBytes() };
        response.Removed.Add(removed.Select(ToProto));
        return response;
    }

    /// <summary>
    /// "namespace/id" of each uid, in order, through the API's store (so a VM in a namespace the caller may not see is
    /// "", as a VM that is gone); the cache records only uids.
    /// </summary>
    private async Task<List<string>> NamesAsync(IReadOnlyList<string> uids, CancellationToken cancellationToken)
    {
        var names = new List<string>(uids.Count);
        var store = services.GetService<IMicroVmStore>();
        foreach (var uid in uids)
        {
            var vm = store is null ? null : await store.GetByUidAsync(uid, cancellationToken);
            names.Add(vm is null ? "" : $"{vm.Spec.Namespace}/{vm.Spec.Id}");
        }

        return names;
    }

    private void Authorize(bool write)
    {
        if (CallerContext.Current is not { } caller || services.GetService<AccessPolicy>() is not { } policy)
        {
            return; // outside a secured request (library use, tests without security)
        }

        var grant = policy.GrantFor(caller) ?? throw new RpcException(new Status(StatusCode.PermissionDenied,
            $"identity \"{caller.Name}\" is not granted anything: list it in the daemon's [[identities]]"));
        if (write && !(grant.Write && grant.Namespaces.Contains(IdentityGrant.AllNamespaces)))
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied,
                $"identity \"{caller.Name}\" may not remove cached images: the cache is shared by every namespace; it needs namespaces = [\"*\"] and write = true"));
        }
    }

    private static Contracts.VmApi.CachedImage ToProto(Hypercore.Images.Cache.CachedImage image)
    {
        var p = new Contracts.VmApi.CachedImage
        {
            Digest = image.Digest,
            SizeBytes = image.SizeBytes,
            LastUsed = image.LastUsed.ToString("O", CultureInfo.InvariantCulture),
            Unpacked = image.HasTree,
            HasDisk = image.HasDisk,
        };
        p.References.Add(image.References);
        p.Users.Add(image.Users);
        return p;
    }
}
