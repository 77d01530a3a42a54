/* Image decoding/encoding over libjpeg-turbo, libpng and libtiff with a C ABI.
 *
 * Every entry point returns 0 on success or non-zero on failure; the reason is kept in a thread-local
 * buffer read by mi_last_error(). Decoded pixels are interleaved (HWC), 8-bit (uint8) or 16-bit (uint16,
 * native byte order); the buffer is malloc'ed and freed with mi_free. The format is detected from the
 * file's first bytes, not its extension.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>
#include <tiffio.h>

#define MI_API __attribute__((visibility("default")))
#define MI_ABI_VERSION 1

typedef struct mi_image {
  int32_t width, height, channels, bit_depth; /* bit_depth: 8 or 16 */
  int32_t format;                             /* 1 JPEG, 2 PNG, 3 TIFF */
  void* data;                                 /* height*width*channels samples */
} mi_image;

static _Thread_local char t_error[512];

static void set_error(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t_error, sizeof t_error, fmt, ap);
  va_end(ap);
}

MI_API const char* mi_last_error(void) { return t_error; }
MI_API int32_t mi_abi_version(void) { return MI_ABI_VERSION; }
MI_API void mi_free(void* p) { free(p); }

/* ------------------------------------------------------------------ JPEG */

struct jpeg_err {
  struct jpeg_error_mgr mgr;
  jmp_buf jump;
};

static void jpeg_error_exit(j_common_ptr cinfo) {
  struct jpeg_err* e = (struct jpeg_err*)cinfo->err;
  char msg[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, msg);
  set_error("JPEG: %s", msg);
  longjmp(e->jump, 1);
}

static void jpeg_silent(j_common_ptr cinfo, int level) {
  /* Corrupt-data warnings (level -1) are promoted to errors: a truncated file must not decode silently. */
  if (level < 0) {
    struct jpeg_err* e = (struct jpeg_err*)cinfo->err;
    char msg[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, msg);
    set_error("JPEG: %s", msg);
    longjmp(e->jump, 1);
  }
}

static int read_jpeg(FILE* f, mi_image* out) {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_err jerr;
  unsigned char* volatile buf = NULL;
  cinfo.err = jpeg_std_error(&jerr.mgr);
  jerr.mgr.error_exit = jpeg_error_exit;
  jerr.mgr.emit_message = jpeg_silent;
  if (setjmp(jerr.jump)) {
    jpeg_destroy_decompress(&cinfo);
    free(buf);
    return 1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, f);
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    set_error("JPEG: CMYK/YCCK colour is not supported");
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  size_t stride = (size_t)cinfo.output_width * cinfo.output_components;
  buf = malloc(stride * cinfo.output_height);
  if (!buf) { set_error("out of memory"); longjmp(jerr.jump, 1); }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = buf + (size_t)cinfo.output_scanline * stride;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  out->width = (int32_t)cinfo.output_width;
  out->height = (int32_t)cinfo.output_height;
  out->channels = cinfo.output_components;
  out->bit_depth = 8;
  out->format = 1;
  out->data = buf;
  jpeg_destroy_decompress(&cinfo);
  return 0;
}

/* ------------------------------------------------------------------ PNG */

static void png_err(png_structp png, png_const_charp msg) {
  set_error("PNG: %s", msg);
  png_longjmp(png, 1);
}
static void png_warn(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static int read_png(FILE* f, mi_image* out) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_err, png_warn);
  if (!png) { set_error("PNG: cannot create reader"); return 1; }
  png_infop info = png_create_info_struct(png);
  unsigned char* volatile buf = NULL;
  png_bytep* volatile rows = NULL;
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, info ? &info : NULL, NULL);
    free(buf);
    free(rows);
    return 1;
  }
  png_init_io(png, f);
  png_read_info(png, info);
  int color = png_get_color_type(png, info);
  int depth = png_get_bit_depth(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (depth == 16) png_set_swap(png); /* PNG stores big-endian; hand out native (little-endian) order */
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  uint32_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  int ch = png_get_channels(png, info);
  int bd = png_get_bit_depth(png, info);
  size_t stride = png_get_rowbytes(png, info);
  buf = malloc(stride * h);
  rows = malloc(sizeof(png_bytep) * h);
  if (!buf || !rows) { set_error("out of memory"); png_longjmp(png, 1); }
  for (uint32_t y = 0; y < h; ++y) rows[y] = buf + (size_t)y * stride;
  png_read_image(png, rows);
  png_read_end(png, NULL);
  out->width = (int32_t)w;
  out->height = (int32_t)h;
  out->channels = ch;
  out->bit_depth = bd;
  out->format = 2;
  out->data = buf;
  free(rows);
  png_destroy_read_struct(&png, &info, NULL);
  return 0;
}

/* ------------------------------------------------------------------ TIFF */

static _Thread_local int t_tiff_failed;
static void tiff_error(const char* module, const char* fmt, va_list ap) {
  char msg[400];
  vsnprintf(msg, sizeof msg, fmt, ap);
  set_error("TIFF: %s", msg);
  t_tiff_failed = 1;
}
static void tiff_warning(const char* module, const char* fmt, va_list ap) { (void)module; (void)fmt; (void)ap; }

static int read_tiff(const char* path, mi_image* out) {
  TIFFSetErrorHandler(tiff_error);
  TIFFSetWarningHandler(tiff_warning);
  t_tiff_failed = 0;
  TIFF* tif = TIFFOpen(path, "r");
  if (!tif) { if (!t_tiff_failed) set_error("TIFF: cannot open"); return 1; }
  uint32_t w = 0, h = 0;
  uint16_t spp = 1, bps = 8, photometric = PHOTOMETRIC_MINISBLACK, planar = PLANARCONFIG_CONTIG, sampleformat = SAMPLEFORMAT_UINT;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &sampleformat);
  TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric);
  if (w == 0 || h == 0) { set_error("TIFF: image has no pixels"); TIFFClose(tif); return 1; }

  int direct = !TIFFIsTiled(tif) && planar == PLANARCONFIG_CONTIG && sampleformat == SAMPLEFORMAT_UINT &&
               (bps == 8 || bps == 16) && (spp == 1 || spp == 3 || spp == 4) &&
               (photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_RGB);
  if (direct) {
    /* Gray or RGB(A) scanlines as stored: keeps 16-bit precision. */
    size_t stride = (size_t)w * spp * (bps / 8);
    unsigned char* buf = malloc(stride * h);
    if (!buf) { set_error("out of memory"); TIFFClose(tif); return 1; }
    for (uint32_t y = 0; y < h; ++y) {
      if (TIFFReadScanline(tif, buf + (size_t)y * stride, y, 0) < 0 || t_tiff_failed) {
        if (!t_tiff_failed) set_error("TIFF: cannot read scanline %u", y);
        free(buf); TIFFClose(tif); return 1;
      }
    }
    out->width = (int32_t)w; out->height = (int32_t)h; out->channels = spp; out->bit_depth = bps;
    out->format = 3; out->data = buf;
    TIFFClose(tif);
    return 0;
  }
  /* Anything else libtiff can render (palette, tiled, YCbCr, 1-bit, ...): 8-bit RGBA. */
  uint32_t* rgba = malloc((size_t)w * h * sizeof(uint32_t));
  if (!rgba) { set_error("out of memory"); TIFFClose(tif); return 1; }
  if (!TIFFReadRGBAImageOriented(tif, w, h, rgba, ORIENTATION_TOPLEFT, 0) || t_tiff_failed) {
    if (!t_tiff_failed) set_error("TIFF: unsupported layout (bits %u, samples %u, photometric %u)", bps, spp, photometric);
    free(rgba); TIFFClose(tif); return 1;
  }
  int gray = (spp == 1 && photometric != PHOTOMETRIC_PALETTE);
  int ch = gray ? 1 : 3;
  unsigned char* buf = malloc((size_t)w * h * ch);
  if (!buf) { set_error("out of memory"); free(rgba); TIFFClose(tif); return 1; }
  for (size_t k = 0; k < (size_t)w * h; ++k) {
    uint32_t p = rgba[k];
    if (gray) buf[k] = (unsigned char)TIFFGetR(p);
    else { buf[3 * k] = (unsigned char)TIFFGetR(p); buf[3 * k + 1] = (unsigned char)TIFFGetG(p); buf[3 * k + 2] = (unsigned char)TIFFGetB(p); }
  }
  free(rgba);
  out->width = (int32_t)w; out->height = (int32_t)h; out->channels = ch; out->bit_depth = 8;
  out->format = 3; out->data = buf;
  TIFFClose(tif);
  return 0;
}

/* ------------------------------------------------------------------ entry points */

/* Decodes a JPEG, PNG or TIFF file (detected from its first bytes). */
MI_API int32_t mi_read(const char* path, mi_image* out) {
  memset(out, 0, sizeof *out);
  FILE* f = fopen(path, "rb");
  if (!f) { set_error("cannot open the file"); return 1; }
  unsigned char magic[8] = {0};
  size_t n = fread(magic, 1, sizeof magic, f);
  rewind(f);
  int rc;
  if (n >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) rc = read_jpeg(f, out);
  else if (n >= 8 && png_sig_cmp(magic, 0, 8) == 0) rc = read_png(f, out);
  else if (n >= 4 && ((magic[0] == 'I' && magic[1] == 'I' && magic[2] == 42 && magic[3] == 0) ||
                      (magic[0] == 'M' && magic[1] == 'M' && magic[2] == 0 && magic[3] == 42))) {
    fclose(f);
    return read_tiff(path, out);
  } else if (n == 0) { set_error("the file is empty"); rc = 1; }
  else { set_error("unsupported format (not JPEG, PNG or TIFF)"); rc = 1; }
  fclose(f);
  return rc;
}

/* Writes 8- or 16-bit interleaved pixels (gray, gray+alpha, RGB, RGBA) as PNG. 16-bit data is native-endian. */
MI_API int32_t mi_write_png(const char* path, const void* data, int32_t width, int32_t height, int32_t channels, int32_t bit_depth) {
  if (width <= 0 || height <= 0 || channels < 1 || channels > 4 || (bit_depth != 8 && bit_depth != 16)) {
    set_error("invalid image geometry %dx%dx%d at %d bits", width, height, channels, bit_depth);
    return 1;
  }
  FILE* f = fopen(path, "wb");
  if (!f) { set_error("cannot create the file"); return 1; }
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_err, png_warn);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  png_bytep* volatile rows = NULL;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    if (png) png_destroy_write_struct(&png, info ? &info : NULL);
    free(rows);
    fclose(f);
    return 1;
  }
  static const int types[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
  png_init_io(png, f);
  png_set_IHDR(png, info, (uint32_t)width, (uint32_t)height, bit_depth, types[channels], PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  if (bit_depth == 16) png_set_swap(png);
  size_t stride = (size_t)width * channels * (bit_depth / 8);
  rows = malloc(sizeof(png_bytep) * height);
  if (!rows) { set_error("out of memory"); png_longjmp(png, 1); }
  for (int32_t y = 0; y < height; ++y) rows[y] = (png_bytep)data + (size_t)y * stride;
  png_write_image(png, rows);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  free(rows);
  if (fclose(f) != 0) { set_error("cannot finish writing the file"); return 1; }
  return 0;
}

/* Writes 8-bit interleaved gray (1 channel) or RGB (3 channels) pixels as a baseline JPEG at quality 1..100. */
MI_API int32_t mi_write_jpeg(const char* path, const void* data, int32_t width, int32_t height, int32_t channels, int32_t quality) {
  if (width <= 0 || height <= 0 || (channels != 1 && channels != 3)) {
    set_error("invalid JPEG geometry %dx%dx%d (channels must be 1 or 3)", width, height, channels);
    return 1;
  }
  if (quality < 1 || quality > 100) { set_error("JPEG quality %d is outside 1..100", quality); return 1; }
  FILE* volatile f = fopen(path, "wb");
  if (!f) { set_error("cannot create the file"); return 1; }
  struct jpeg_compress_struct cinfo;
  struct jpeg_err jerr;
  cinfo.err = jpeg_std_error(&jerr.mgr);
  jerr.mgr.error_exit = jpeg_error_exit;
  jerr.mgr.emit_message = jpeg_silent;
  if (setjmp(jerr.jump)) {
    jpeg_destroy_compress(&cinfo);
    fclose(f);
    return 1;
  }
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, f);
  cinfo.image_width = (JDIMENSION)width;
  cinfo.image_height = (JDIMENSION)height;
  cinfo.input_components = channels;
  cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  size_t stride = (size_t)width * channels;
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = (JSAMPROW)((const unsigned char*)data + (size_t)cinfo.next_scanline * stride);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  if (fclose(f) != 0) { set_error("cannot finish writing the file"); return 1; }
  return 0;
}

/* Writes 8- or 16-bit interleaved gray (1), gray+alpha (2), RGB (3) or RGBA (4) pixels as a strip TIFF.
 * compression: 0 none, 1 deflate (zlib). 16-bit data is native-endian. */
MI_API int32_t mi_write_tiff(const char* path, const void* data, int32_t width, int32_t height, int32_t channels, int32_t bit_depth, int32_t compression) {
  if (width <= 0 || height <= 0 || channels < 1 || channels > 4 || (bit_depth != 8 && bit_depth != 16)) {
    set_error("invalid image geometry %dx%dx%d at %d bits", width, height, channels, bit_depth);
    return 1;
  }
  if (compression != 0 && compression != 1) { set_error("unknown TIFF compression %d (0 none, 1 deflate)", compression); return 1; }
  TIFFSetErrorHandler(tiff_error);
  TIFFSetWarningHandler(tiff_warning);
  t_tiff_failed = 0;
  TIFF* tif = TIFFOpen(path, "w");
  if (!tif) { if (!t_tiff_failed) set_error("TIFF: cannot create the file"); return 1; }
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)width);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)height);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)channels);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (uint16_t)bit_depth);
  TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, (uint16_t)SAMPLEFORMAT_UINT);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, (uint16_t)PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, (uint16_t)(channels >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK));
  TIFFSetField(tif, TIFFTAG_ORIENTATION, (uint16_t)ORIENTATION_TOPLEFT);
  if (channels == 2 || channels == 4) {
    uint16_t extra = EXTRASAMPLE_UNASSALPHA;
    TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, (uint16_t)1, &extra);
  }
  TIFFSetField(tif, TIFFTAG_COMPRESSION, (uint16_t)(compression == 1 ? COMPRESSION_ADOBE_DEFLATE : COMPRESSION_NONE));
  size_t stride = (size_t)width * channels * (bit_depth / 8);
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(tif, (uint32_t)-1));
  if (t_tiff_failed) { TIFFClose(tif); return 1; }
  for (int32_t y = 0; y < height; ++y) {
    if (TIFFWriteScanline(tif, (unsigned char*)data + (size_t)y * stride, (uint32_t)y, 0) < 0 || t_tiff_failed) {
      if (!t_tiff_failed) set_error("TIFF: cannot write scanline %d", y);
      TIFFClose(tif);
      return 1;
    }
  }
  TIFFClose(tif);
  if (t_tiff_failed) return 1;
  return 0;
}
