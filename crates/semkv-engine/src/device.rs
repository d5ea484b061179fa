//! Picking the MLX device (GPU where the loaded libmlx has one: CUDA or Metal; else the
//! CPU) and describing it.

use mlx_rs::{Device, DeviceType};

/// Which device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The GPU when available, else the CPU.
    #[default]
    Auto,
    Cpu,
    Gpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "gpu" | "cuda" | "metal" => Ok(Self::Gpu),
            _ => Err(format!("unknown device {s:?} (auto, cpu, gpu)")),
        }
    }
}

/// What the engine runs on, for logs and the server-info RPC.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceInfo {
    /// `Device(gpu, 0)` or `Device(cpu, 0)`, as MLX prints it.
    pub device: String,
    pub is_gpu: bool,
    /// `cuda`, `metal` or `cpu`.
    pub backend: &'static str,
    /// OpenBLAS threads used for CPU matrix products (0: MLX's own BLAS).
    pub blas_threads: i32,
}

fn gpu_available() -> bool {
    let mut available = false;
    // SAFETY: creates, queries and frees a device handle of our own.
    let rc = unsafe {
        let gpu = mlx_sys::mlx_device_new_type(mlx_sys::mlx_device_type__MLX_GPU, 0);
        let rc = mlx_sys::mlx_device_is_available(&mut available, gpu);
        mlx_sys::mlx_device_free(gpu);
        rc
    };
    rc == 0 && available
}

fn cuda_available() -> bool {
    let mut available = false;
    // SAFETY: plain query.
    let rc = unsafe { mlx_sys::mlx_cuda_is_available(&mut available) };
    rc == 0 && available
}

/// Makes the chosen device MLX's default for this process; errors if a GPU is demanded
/// but the loaded libmlx has none.
pub fn select(choice: DeviceChoice) -> Result<DeviceInfo, String> {
    let use_gpu = match choice {
        DeviceChoice::Cpu => false,
        DeviceChoice::Gpu if !gpu_available() => return Err(
            "no GPU: the loaded libmlx is a CPU build (load mlx-cuda's libmlx.so, see docs/gpu.md)"
                .into(),
        ),
        DeviceChoice::Gpu => true,
        DeviceChoice::Auto => gpu_available(),
    };
    let device = if use_gpu {
        Device::gpu()
    } else {
        Device::cpu()
    };
    Device::set_default(&device);
    Ok(describe(&device))
}

fn describe(device: &Device) -> DeviceInfo {
    let is_gpu = matches!(device.get_type(), Ok(DeviceType::Gpu));
    let backend = match (is_gpu, cfg!(target_os = "macos")) {
        (false, _) => "cpu",
        (true, true) => "metal",
        (true, false) if cuda_available() => "cuda",
        (true, false) => "gpu",
    };
    #[cfg(target_os = "linux")]
    // SAFETY: reads a counter from the shim compiled into mlx-sys.
    let blas_threads = unsafe { mlx_sys::semkv_blas_threads() };
    #[cfg(not(target_os = "linux"))]
    let blas_threads = 0;
    DeviceInfo {
        device: format!("{device:?}"),
        is_gpu,
        backend,
        blas_threads,
    }
}
