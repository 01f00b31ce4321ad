-- Chat messages; (room, send_time) is the identity, as in the seed's DynamoDB table.
CREATE TABLE IF NOT EXISTS chat_messages (
    chat_room_id BIGINT        NOT NULL,
    send_time    BIGINT        NOT NULL,
    sender_id    BIGINT        NOT NULL,
    sender_name  VARCHAR(100)  NOT NULL,
    content      TEXT          NOT NULL,
    PRIMARY KEY (chat_room_id, send_time)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
