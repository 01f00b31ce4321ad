-- Festivals, and an n-gram index for substring search: every distinct character and pair of
-- neighbouring characters of the folded (lowercased) name and description. Folded columns and
-- grams are binary (UTF-8 bytes): they compare byte for byte, exactly as the Rust definition does,
-- and without the trailing-space padding of the _bin collations ('는' and '는 ' are two grams).
CREATE TABLE IF NOT EXISTS festivals (
    id                 BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name               VARCHAR(100)  NOT NULL,
    description        VARCHAR(2000) NOT NULL,
    location           VARCHAR(100),
    name_folded        VARBINARY(800)   NOT NULL,
    description_folded VARBINARY(16000) NOT NULL,
    start_date         DATE          NOT NULL,
    end_date           DATE          NOT NULL,
    created_at         BIGINT        NOT NULL,
    updated_at         BIGINT        NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS festival_grams (
    gram        VARBINARY(8) NOT NULL,
    festival_id BIGINT     NOT NULL,
    PRIMARY KEY (gram, festival_id)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS festival_gram_counts (
    gram      VARBINARY(8) NOT NULL PRIMARY KEY,
    festivals BIGINT     NOT NULL
) ENGINE = InnoDB;
