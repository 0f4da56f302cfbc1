// PNG via libpng. libpng reports errors by longjmp, which must not cross C++ frames with
// destructors: the setjmp lives in encode_rows(), whose frame holds only trivial objects.
#include "haywire/glass/png.h"

#include <png.h>
#include <unistd.h>

#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

namespace haywire::glass {
namespace {

struct PngErrorSink {
  char message[256];
};

[[noreturn]] void on_png_error(png_structp png, png_const_charp message) {
  auto* sink = static_cast<PngErrorSink*>(png_get_error_ptr(png));
  std::snprintf(sink->message, sizeof(sink->message), "%s", message);
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}

// Encodes rows of RGBA8 into `file`. Returns false with sink->message set on failure.
bool encode_rows(std::FILE* file, const std::uint8_t* rgba, std::uint32_t width,
                 std::uint32_t height, int level, PngErrorSink* sink) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, sink, on_png_error, on_png_warning);
  if (png == nullptr) {
    std::snprintf(sink->message, sizeof(sink->message), "out of memory");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr || setjmp(png_jmpbuf(png)) != 0) {  // NOLINT(cert-err52-cpp): libpng's contract
    png_destroy_write_struct(&png, info != nullptr ? &info : nullptr);
    if (sink->message[0] == '\0') std::snprintf(sink->message, sizeof(sink->message), "out of memory");
    return false;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGBA, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_NONE);
  png_set_compression_level(png, level);
  png_set_compression_buffer_size(png, 1 << 20);
  png_write_info(png, info);
  const std::size_t stride = std::size_t{width} * 4;
  for (std::uint32_t y = 0; y < height; ++y) png_write_row(png, rgba + y * stride);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

Error open_error(const std::string& path, int err) {
  if (err == EACCES || err == EPERM || err == EROFS) return PermissionDenied{path};
  return IoError{fmt::format("cannot create {}", path), err};
}

}  // namespace

Result<void> write_png(const std::string& path, const Image& image, const PngOptions& options) {
  if (image.width == 0 || image.height == 0 ||
      image.rgba.size() != std::size_t{image.width} * image.height * 4) {
    return fail(InvalidArgument{fmt::format("image {}x{} with {} bytes is not a valid RGBA8 image",
                                            image.width, image.height, image.rgba.size())});
  }
  if (options.compression_level < 0 || options.compression_level > 9) {
    return fail(InvalidArgument{"PNG compression level must be 0..9"});
  }
  const std::string temp = fmt::format("{}.tmp.{}", path, ::getpid());
  std::FILE* file = std::fopen(temp.c_str(), "wb");
  if (file == nullptr) return std::unexpected(open_error(path, errno));
  PngErrorSink sink{};
  const bool encoded = encode_rows(file, image.rgba.data(), image.width, image.height,
                                   options.compression_level, &sink);
  const int write_errno = errno;
  const bool flushed = std::fflush(file) == 0;
  const int flush_errno = errno;
  const bool closed = std::fclose(file) == 0;
  if (!encoded || !flushed || !closed) {
    ::unlink(temp.c_str());
    if (!encoded) {
      return fail(IoError{fmt::format("writing PNG {}: {}", path, sink.message), write_errno});
    }
    return fail(IoError{fmt::format("writing PNG {}", path), flushed ? errno : flush_errno});
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    if (err == EACCES || err == EPERM) return fail(PermissionDenied{path});
    return fail(IoError{fmt::format("replacing {}", path), err});
  }
  return {};
}

Result<Image> read_png(const std::string& path) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  if (png_image_begin_read_from_file(&png, path.c_str()) == 0) {
    const std::string why = png.message;
    png_image_free(&png);
    if (access(path.c_str(), F_OK) != 0) return fail(FileNotFound{path});
    return fail(ParseError{fmt::format("PNG {}", path), why});
  }
  png.format = PNG_FORMAT_RGBA;
  Image image;
  image.width = png.width;
  image.height = png.height;
  image.rgba.resize(PNG_IMAGE_SIZE(png));
  if (png_image_finish_read(&png, nullptr, image.rgba.data(), 0, nullptr) == 0) {
    const std::string why = png.message;
    png_image_free(&png);
    return fail(ParseError{fmt::format("PNG {}", path), why});
  }
  return image;
}

}  // namespace haywire::glass
