"""Golden images and the copies made of them: ext4 and Debian images, bootable disks, clones."""
