"""Reading and writing images, DICOM and dataset manifests (one place converts files <-> [0,1] floats)."""
