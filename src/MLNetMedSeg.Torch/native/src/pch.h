// Precompiled header: the heavy libtorch headers every translation unit needs.
#pragma once
#include <ATen/ATen.h>
#include <torch/version.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/generated/variable_factories.h>
