// Namespaces most tests use, besides their own: the data transforms and the augmentation side channel / SDEdit contract.
global using MLNetMedSeg.Data.Transforms;
global using MLNetMedSeg.Augmentation;
