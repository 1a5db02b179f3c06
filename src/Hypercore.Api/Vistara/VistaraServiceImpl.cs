using Grpc.Core;
using Hypercore.Images;
using Hypercore.MicroVms;
using Hypercore.Operations;
using VistaraProto = Hypercore.Contracts.Vistara;

namespace Hypercore.Api.Vistara;

/// <summary>
/// vistara.Vistara: the seed's simple service, mapped onto the same desired state as VMService.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>CreateMicroVM: name is the VM id ("" → generated), namespace "default", image is an image name ("" →
/// "default") or an absolute kernel path, memory in MB ("0" → 128), cpu ("0" → 1), network = number of tap NICs
/// (eth0, eth1, …; 0-8). The reply's id is the VM's uid.</item>
/// <item>disk (MB): 0 means no extra disk. disk &gt; 0 adds a blank scratch disk of that size (volume id "disk",
/// no host path): the driver makes it as a sparse raw file in the VM's runtime directory and removes it with the
/// VM. It is not a root filesystem; an image's rootfs.img, if any, stays the (read-only) root volume.</item>
/// <item>Get/Delete/List take the uid or the VM id (name). disk is reported as the total size of the VM's volumes
/// whose size is known (root rootfs.img plus scratch disks).</item>
/// </list>
/// </remarks>
public sealed class VistaraServiceImpl : VistaraProto.Vistara.VistaraBase
{
    public const string DefaultImage = "default";
    public const int MaxNetworkInterfaces = 8;
    public const string ScratchDiskId = "disk";

    private readonly MicroVmOperations _ops;

    public VistaraServiceImpl(MicroVmOperations ops) => _ops = ops;

    public override async Task<VistaraProto.CreateMicroVMResponse> CreateMicroVM(VistaraProto.CreateMicroVMRequest request, ServerCallContext context)
    {
        var errors = new List<string>();
        var image = request.Image.Length == 0 ? DefaultImage : request.Image;
        if (request.Network is < 0 or > MaxNetworkInterfaces)
        {
            errors.Add($"network must be between 0 and {MaxNetworkInterfaces} (the number of tap interfaces), got {request.Network}");
        }

        if (request.Memory < 0 || request.Cpu < 0)
        {
            errors.Add($"memory and cpu must not be negative (0 means the default), got memory {request.Memory}, cpu {request.Cpu}");
        }

        if (request.Disk < 0)
        {
            errors.Add($"disk must not be negative (MB of scratch disk; 0 means none), got {request.Disk}");
        }

        var spec = new MicroVmSpec
        {
            Id = request.Name,
            Vcpu = request.Cpu == 0 ? 1 : request.Cpu,
            MemoryInMb = request.Memory == 0 ? 128 : request.Memory,
            Kernel = new KernelSpec { Image = image },
            AdditionalVolumes = request.Disk > 0 ? [new VolumeSpec { Id = ScratchDiskId, SizeInMb = request.Disk }] : [],
            Interfaces = Enumerable.Range(0, Math.Clamp(request.Network, 0, MaxNetworkInterfaces))
                .Select(i => new NetworkInterfaceSpec { DeviceId = $"eth{i}", Type = InterfaceType.Tap })
                .ToList(),
        };
        var created = await _ops.CreateAsync(spec, errors, context.CancellationToken);
        return new VistaraProto.CreateMicroVMResponse { Id = created.Uid };
    }

    public override async Task<VistaraProto.DeleteMicroVMResponse> DeleteMicroVM(VistaraProto.DeleteMicroVMRequest request, ServerCallContext context)
    {
        var vm = await FindAsync(request.Id, context.CancellationToken);
        await _ops.DeleteAsync(vm, context.CancellationToken);
        return new VistaraProto.DeleteMicroVMResponse { Id = vm.Uid };
    }

    public override async Task<VistaraProto.GetMicroVMResponse> GetMicroVM(VistaraProto.GetMicroVMRequest request, ServerCallContext context)
    {
        var vm = await FindAsync(request.Id, context.CancellationToken);
        return new VistaraProto.GetMicroVMResponse
        {
            Id = vm.Uid,
            Name = vm.Spec.Id,
            Image = ImageOf(vm.Spec),
            Memory = vm.Spec.MemoryInMb,
            Cpu = vm.Spec.Vcpu,
            Disk = DiskOf(vm.Spec),
            Network = vm.Spec.Interfaces.Count,
        };
    }

    public override async Task<VistaraProto.ListMicroVMResponse> ListMicroVM(VistaraProto.ListMicroVMRequest request, ServerCallContext context)
    {
        var all = await _ops.ListAsync("", "", context.CancellationToken);
        var reply = new VistaraProto.ListMicroVMResponse();
        foreach (var vm in all.Where(v => request.Id.Length == 0 || v.Uid == request.Id || v.Spec.Id == request.Id))
        {
            reply.Id.Add(vm.Uid);
            reply.Name.Add(vm.Spec.Id);
            reply.Image.Add(ImageOf(vm.Spec));
            reply.Memory.Add(vm.Spec.MemoryInMb);
            reply.Cpu.Add(vm.Spec.Vcpu);
            reply.Disk.Add(DiskOf(vm.Spec));
            reply.Network.Add(vm.Spec.Interfaces.Count);
        }

        return reply;
    }

    /// <summary>MB of all volumes whose size is known.</summary>
    private static int DiskOf(MicroVmSpec spec) =>
        (spec.RootVolume is null ? spec.AdditionalVolumes : spec.AdditionalVolumes.Prepend(spec.RootVolume)).Sum(v => v.SizeInMb ?? 0);

    /// <summary>The image name the VM was made from, else its kernel path.</summary>
    private static string ImageOf(MicroVmSpec spec) =>
        spec.Labels.TryGetValue(ImageCatalog.ImageLabel, out var name) ? name : spec.Kernel.Image;

    private Task<MicroVm> FindAsync(string id, CancellationToken ct) => _ops.FindByUidOrIdAsync(id, ct);
}
