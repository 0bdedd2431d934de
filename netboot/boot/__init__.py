"""What a booting machine is served: the namespace of boot files, its URLs, the rendered
scripts and initrd part, the boot loaders."""
